"""A private Prometheus server on loopback that answers queries over samples we give it.

Samples arrive as OpenMetrics text, `promtool tsdb create-blocks-from openmetrics` turns
them into TSDB blocks in the server's storage directory, and `prometheus` is started on
that directory. Blocks are only read when the server opens its storage, so every data set
must be imported before `start()`. Optionally the server also scrapes loopback targets,
the only way to get the stale markers Prometheus writes when a series disappears.

Two properties of backfilled blocks shape how callers choose their samples:
- Prometheus keeps blocks only while they are within retention of the newest data, and it
  refuses to backfill into the time range its head still covers; samples should therefore
  lie well in the past (a fixed day months ago), and retention here is set to a century.
- OpenMetrics cannot carry stale markers, so a series that "stops" simply has no more
  samples: instant queries still see its last sample for the 5-minute lookback.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from opsplane.drivers.sandbox import Sandbox, SandboxError, end_process
from opsplane.drivers.sandbox.ports import free_port

_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0
_QUERY_TIMEOUT = 30.0
_PROMETHEUS = "/usr/bin/prometheus"
_PROMTOOL = "/usr/bin/promtool"
_LOOPBACK = ("127.0.0.1:", "localhost:", "[::1]:")


def find_binary(name: str, debian_path: str) -> str:
    """The path of a Prometheus binary; SandboxError saying how to install it otherwise."""
    if os.access(debian_path, os.X_OK):
        return debian_path
    found = shutil.which(name)
    if found is None:
        raise SandboxError(
            f"{name} not found (looked at {debian_path} and on PATH): install Prometheus, "
            "e.g. `apt-get install prometheus`, which brings promtool too"
        )
    return found


def format_openmetrics_value(value: float) -> str:
    """A float as OpenMetrics writes it: NaN, +Inf, -Inf, or the shortest exact decimal."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def openmetrics_text(
    series: list[tuple[tuple[tuple[str, str], ...], list[tuple[float, float]]]],
) -> str:
    """OpenMetrics exposition of `series`: each a sorted label tuple (with `__name__`) and
    its (seconds, value) samples in time order, ending with the mandatory `# EOF`.

    No TYPE lines are written: every family is "unknown", which lets any name carry any
    samples; PromQL does not look at metric types.
    """
    lines: list[str] = []
    for labels, samples in series:
        name = dict(labels).get("__name__")
        if not name:
            raise SandboxError(f"series {labels!r} has no __name__ label")
        rest = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in labels if k != "__name__")
        head = f"{name}{{{rest}}}" if rest else name
        lines.extend(f"{head} {format_openmetrics_value(v)} {t:.3f}" for t, v in samples)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


class TemporaryPrometheus(Sandbox):
    """A Prometheus server of our own on 127.0.0.1 on a free port.

    `base_dir` holds the storage (`data/`), the configuration and the server log. Use
    `import_openmetrics()` before `start()`, then `query()` and `query_range()`. With
    `scrape_targets` ("127.0.0.1:PORT" each, loopback only) the server also scrapes their
    /metrics every `scrape_interval` seconds, in one job named "targets", which is how
    stale markers get written: only a scrape can tell that a series went away.
    `job_name` names that job. `rules` (a rule file's content, `{"groups": [...]}`) is
    evaluated every `scrape_interval`, and its alerts are sent to `alertmanagers` (entries
    of prometheus.yml's `alerting.alertmanagers`, their static targets on loopback only).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        lookback_seconds: float = 300.0,
        scrape_targets: Sequence[str] = (),
        scrape_interval: float = 1.0,
        *,
        job_name: str = "targets",
        rules: Mapping[str, Any] | None = None,
        alertmanagers: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        for target in scrape_targets:
            if not target.startswith(_LOOPBACK):
                raise SandboxError(f"scrape target {target!r} is not on loopback: the sandbox "
                                   "Prometheus only scrapes 127.0.0.1, localhost or [::1]")
        for manager in alertmanagers:
            for static in manager.get("static_configs", ()):
                for target in static.get("targets", ()):
                    if not str(target).startswith(_LOOPBACK):
                        raise SandboxError(f"alertmanager {target!r} is not on loopback: the sandbox "
                                           "Prometheus only sends to 127.0.0.1, localhost or [::1]")
        if scrape_interval <= 0:
            raise SandboxError(f"scrape interval must be positive, got {scrape_interval:g} s")
        self.base_dir = Path(base_dir)
        self.host = "127.0.0.1"
        self.port = 0
        self.lookback_seconds = lookback_seconds
        self.scrape_targets = tuple(scrape_targets)
        self.scrape_interval = scrape_interval
        self.job_name = job_name
        self.rules = rules
        self.alertmanagers = [dict(manager) for manager in alertmanagers]
        self._process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None
        self._imports = 0
        self._version: str | None = None

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def import_openmetrics(self, text: str) -> None:
        """Turn OpenMetrics `text` into TSDB blocks in the storage directory.

        Raises SandboxError when the server is already running (it would not see the new
        blocks) or when promtool rejects the text, with promtool's own explanation.
        """
        if self.running:
            raise SandboxError("import OpenMetrics data before starting Prometheus: a running "
                               "server does not load new blocks")
        promtool = find_binary("promtool", _PROMTOOL)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._imports += 1
        source = self.base_dir / f"import-{self._imports}.om.txt"
        source.write_text(text)
        result = subprocess.run(  # noqa: S603 - argv built here, no shell
            [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(self.data_dir)],
            capture_output=True, text=True, check=False, cwd=self.base_dir,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise SandboxError(f"promtool could not turn {source} into blocks: {detail}")

    def start(self) -> TemporaryPrometheus:
        """Start the server; returns self once /-/ready answers. Starting twice does nothing."""
        if self.running:
            return self
        binary = find_binary("prometheus", _PROMETHEUS)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.base_dir / "prometheus.yml"
        config.write_text(self._configuration())
        self.port = free_port(self.host)
        argv = [
            binary, f"--config.file={config}", f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self.port}",
            "--storage.tsdb.retention.time=100y",
            f"--query.lookback-delta={self.lookback_seconds:g}s", "--log.level=warn",
        ]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.base_dir,
            )
        self._client = httpx.Client(base_url=self.url, timeout=_QUERY_TIMEOUT, trust_env=False)
        try:
            self._wait_ready(self._client)
        except BaseException:
            self.stop()
            raise
        return self

    def query(self, expr: str, at: float) -> dict[str, Any]:
        """The `data` of /api/v1/query for `expr` at `at` (Unix seconds): `resultType` and `result`.

        A query Prometheus rejects raises SandboxError carrying its error type and message.
        """
        return self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        """The `data` of /api/v1/query_range for `expr` from `start` to `end` every `step` seconds."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._get("/api/v1/query_range", params)

    def version(self) -> str:
        """The running server's version as it reports it, e.g. "2.42.0+ds"."""
        if self._version is None:
            self._version = str(self._get("/api/v1/status/buildinfo", {})["version"])
        return self._version

    def major_version(self) -> int:
        """The running server's major version: 2 and 3 differ in window edges and extrapolation."""
        head = self.version().split(".", 1)[0]
        if not head.isdigit():
            raise SandboxError(f"cannot read a major version from Prometheus's {self.version()!r}")
        return int(head)

    def stop(self) -> None:
        """SIGTERM the server and wait until it has exited (SIGKILL if it will not). Idempotent."""
        self._version = None
        client, self._client = self._client, None
        if client is not None:
            client.close()
        process, self._process = self._process, None
        if process is None:
            return
        end_process(process, _STOP_TIMEOUT)

    def __repr__(self) -> str:
        return f"<TemporaryPrometheus {self.host}:{self.port} pid={self.pid}>"

    def _configuration(self) -> str:
        """prometheus.yml as JSON, which YAML reads as it is."""
        interval = f"{self.scrape_interval * 1000:.0f}ms"
        settings: dict[str, Any] = {"global": {"scrape_interval": interval, "evaluation_interval": interval}}
        if self.scrape_targets:
            settings["scrape_configs"] = [{
                "job_name": self.job_name, "scrape_interval": interval, "scrape_timeout": interval,
                "static_configs": [{"targets": list(self.scrape_targets)}],
            }]
        if self.rules is not None:
            rule_file = self.base_dir / "rules.yml"
            rule_file.write_text(json.dumps(self.rules, indent=2) + "\n")
            settings["rule_files"] = [str(rule_file)]
        if self.alertmanagers:
            settings["alerting"] = {"alertmanagers": self.alertmanagers}
        return json.dumps(settings, indent=2) + "\n"

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        if self._client is None or not self.running:
            raise SandboxError("Prometheus is not running: call start() first")
        response = self._client.get(path, params=params)
        try:
            body = response.json()
        except json.JSONDecodeError as exc:
            raise SandboxError(f"Prometheus answered {path} with HTTP {response.status_code} "
                               f"and no JSON: {response.text[:200]!r}") from exc
        if body.get("status") != "success":
            raise SandboxError(f"Prometheus refused {params.get('query', path)!r}: "
                               f"{body.get('errorType')}: {body.get('error')}")
        data: dict[str, Any] = body["data"]
        return data

    def _wait_ready(self, client: httpx.Client) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise SandboxError(f"prometheus exited with code {self._process.returncode} at "
                                   f"start{self._log_tail()}")
            try:
                response = client.get("/-/ready")
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last_error = str(exc) or type(exc).__name__
            time.sleep(0.05)
        raise SandboxError(f"prometheus on port {self.port} was not ready within "
                           f"{_START_TIMEOUT:g} s ({last_error}){self._log_tail()}")
