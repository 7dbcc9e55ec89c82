"""A small real platform for deploy tests: the shop's catalog on SQLite under the process
runtime, fronted by nginx or HAProxy (or by nothing), with `opsplane serve` advancing its
deploys; and a load generator that records every answer it gets through the proxy.

Everything lives in one directory (the inventory, the store, the runtime's state, the proxy's
files and the catalog's database), and every port is a free loopback port.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from opsplane.deploy import service as deploys
from opsplane.deploy.tables import DeployRow
from opsplane.drivers.sandbox.ports import free_port
from opsplane.events.tables import Event
from opsplane.store import Store
from tests.support.polling import wait_for
from tests.support.serve import Serve

ENGINES = ("nginx", "haproxy")
SERVICE = "catalog"
MAIN_ROUTE = "/products"  # the catalog's main route: the one a release changes


@dataclass
class DeployPlatform:
    """The catalog (`instances` of it, release v1) behind a proxy of `engine` (None: no proxy),
    its inventory, store and runtime state under `base`. `start()` runs it, `stop()` ends it."""

    base: Path
    engine: str | None = "nginx"
    instances: int = 2
    keep_previous: str = "10s"
    strategy: str = "blue-green"
    ports: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.ports = {"catalog": free_port(), "edge": free_port(), "serve": free_port()}
        # HAProxy takes admin socket paths of at most 97 bytes; pytest's directories can be longer.
        self.sockets = Path(tempfile.mkdtemp(prefix="opsplane-edge-", dir="/tmp"))
        self.inventory_path = self.base / "opsplane.yaml"
        self.inventory_path.write_text(self.inventory_yaml())
        self.serve = ServeLoggingToFile(self.base, self.inventory_path, port=self.ports["serve"])
        self.store = Store.open(self.serve.env["OPSPLANE_DATABASE_URL"])

    @property
    def url(self) -> str:
        """The catalog as its clients reach it: through the proxy when there is one."""
        return f"http://127.0.0.1:{self.ports['catalog']}"

    @property
    def main_route(self) -> str:
        """The catalog's product listing through the proxy: what the load asks for."""
        return self.url + MAIN_ROUTE

    @property
    def state_dir(self) -> Path:
        return self.base / "run"

    @property
    def proxy_dir(self) -> Path:
        return self.state_dir / "proxy" / "edge"

    @property
    def admin_socket(self) -> Path:
        return self.sockets / "admin.sock"

    # --- the inventory ----------------------------------------------------------------------

    def inventory_yaml(self) -> str:
        """The platform as an operator would write it, with deploy settings short enough for a test."""
        python = json.dumps(sys.executable)
        lines = [
            "platform: {name: deploy-shop, default_environment: development}",
            "environments:",
            "  development: {host: 127.0.0.1}",
            "defaults: {interval: 2s, timeout: 2s}",
            "runtime: {driver: process, state_dir: run}",
            "services:",
            "  catalog:",
            "    kind: api",
            f"    port: {self.ports['catalog']}",
            *(["    proxy: edge"] if self.engine else []),
            "    checks:",
            "      - {name: health, type: http, path: /health,",
            "         json: {path: status, op: in, value: [ok, degraded]}}",
            "    run:",
            f"      argv: [{python}, -m, shop, catalog, --host, 127.0.0.1, --port, '{{port}}']",
            "      version: v1",
            f"      instances: {self.instances}",
            "      env:",
            f"        SHOP_DATA_DIR: {json.dumps(str(self.base / 'shop-data'))}",
            "        SHOP_VERSION: '{version}'",
            "        SHOP_LOG_LEVEL: WARNING",
            "      stop_timeout: 5s",
            "      backoff: {initial: 1s, max: 5s}",
        ]
        if self.engine:
            lines += [
                "proxies:",
                "  edge:",
                f"    engine: {self.engine}",
                f"    port: {self.ports['edge']}",
                *([f"    admin_socket: {json.dumps(str(self.admin_socket))}"]
                  if self.engine == "haproxy" else []),
            ]
        lines += [
            "deploy:",
            f"  strategy: {self.strategy}",
            "  windows: {}",
            "  health_timeout: 30s",
            f"  blue_green: {{keep_previous: {self.keep_previous}}}",
            "  canary: {steps: [10, 50, 100], step_duration: 30s, interval: 5s}",
            "  services:",
            f"    catalog: {{releases_command: [{python}, -m, shop, releases]}}",
        ]
        return "\n".join(lines) + "\n"

    # --- running it -------------------------------------------------------------------------

    def start(self, *, serve: bool = True) -> DeployPlatform:
        """`opsplane up catalog` (which starts the proxy after it), then `serve` unless told not to;
        returns once the catalog answers where its clients reach it."""
        self.cli("up", SERVICE)
        wait_for(self._answers, f"{SERVICE} to answer on {self.url}", timeout=30)
        if serve:
            self.serve.start()
        return self

    def stop(self) -> str:
        """Stop `serve`, then everything the runtime runs; `serve`'s output."""
        output = self.serve.stop()
        self.serve.run("down")
        self.store.close()
        shutil.rmtree(self.sockets, ignore_errors=True)
        return output

    def _answers(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=2, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    # --- the command ------------------------------------------------------------------------

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`opsplane ARGS` on this inventory and store, whatever its exit code."""
        return self.serve.run(*args)

    def cli(self, *args: str) -> str:
        """`opsplane ARGS`, which must exit 0; its output."""
        done = self.serve.run(*args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json"))

    def ps(self) -> list[dict[str, Any]]:
        """`opsplane ps --json`: every instance, tracks included."""
        return list(self.json("ps"))

    def deploy(self, version: str, *options: str) -> int:
        """Ask for a deploy of `version` of the catalog and return its id without waiting."""
        answer = self.json("deploy", SERVICE, version, "--no-wait", *options)
        return int(answer["id"])

    # --- reading the store and the runtime's files ------------------------------------------

    def deploy_state(self, deploy_id: int) -> dict[str, Any]:
        """The deploy as `opsplane deploy status ID --json` shows it, read from the store."""
        with self.store.session() as session:
            return deploys.as_dict(deploys.get(session, deploy_id))

    def step_started(self, deploy_id: int) -> tuple[int, Any]:
        """(The deploy's current step, when that step began), None while it has not begun."""
        with self.store.session() as session:
            row = deploys.get(session, deploy_id)
            return row.step, row.step_started_at

    def wait_deploy(self, deploy_id: int, states: Sequence[str] = deploys.FINAL,
                    timeout: float = 120.0) -> dict[str, Any]:
        """The deploy once it is in one of `states`."""
        def reached() -> dict[str, Any] | None:
            found = self.deploy_state(deploy_id)
            return found if found["state"] in states else None

        return dict(wait_for(reached, f"deploy {deploy_id} to be {' or '.join(states)}", timeout=timeout,
                             interval=0.1))

    def wait_step(self, deploy_id: int, kind: str, timeout: float = 60.0) -> None:
        """Until the deploy's step of `kind` has begun (it may have ended since)."""
        index = step_index(self.deploy_state(deploy_id), kind)

        def begun() -> bool:
            step, started = self.step_started(deploy_id)
            return step > index or (step == index and started is not None)

        wait_for(begun, f"step {index} ({kind}) of deploy {deploy_id} to begin", timeout=timeout,
                 interval=0.05)

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Events of `kind` (a trailing `*` matches a prefix), oldest first."""
        query = select(Event).order_by(Event.id)
        query = (query.where(Event.kind.startswith(kind[:-1])) if kind.endswith("*")
                 else query.where(Event.kind == kind))
        with self.store.session() as session:
            return [event.as_dict() | {"at": event.ts.timestamp()} for event in session.scalars(query)]

    def timeline(self) -> str:
        """The deploy and runtime events, one line each with its Unix time: for a failure's message."""
        lines = [f"{e['at']:.3f} {e['kind']} {e['target']} {e['details']}" for e in self.events("*")
                 if e["kind"].startswith(("deploy.", "runtime."))]
        return "\n".join(lines)

    def counts(self) -> dict[str, int]:
        """Rows of the deploys and events tables."""
        with self.store.session() as session:
            return {"deploys": int(session.scalar(select(func.count()).select_from(DeployRow)) or 0),
                    "events": int(session.scalar(select(func.count()).select_from(Event)) or 0)}

    def releases(self) -> dict[str, str]:
        """What `releases.json` records (nothing before the first deploy ends)."""
        path = self.state_dir / "releases.json"
        return dict(json.loads(path.read_text())) if path.exists() else {}

    def proxy_files(self) -> dict[str, str]:
        """A digest of every file under the proxy's directory, by name (sockets and pid files
        left out: they are the running proxy's, not its configuration)."""
        if not self.proxy_dir.exists():
            return {}
        return {str(path.relative_to(self.proxy_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in sorted(self.proxy_dir.rglob("*")) if path.is_file()
                and path.suffix not in (".sock", ".pid", ".log")}

    def proxy_retries(self) -> list[str]:
        """What the proxy says about requests it had to send to another backend because theirs
        refused or dropped them (a backend stopped while it still had a share): nginx's error log
        lines about upstreams, HAProxy's retry, redispatch and connection error counters per
        server. Empty when every request went to a backend that took it."""
        if self.engine == "nginx":
            log = self.proxy_dir / "error.log"
            lines = log.read_text().splitlines() if log.exists() else []
            return [line for line in lines if "upstream" in line and "[error]" in line]
        found = []
        for row in _haproxy_stats(self.admin_socket):
            counts = {name: int(row[name] or 0) for name in ("wretr", "wredis", "econ", "eresp")}
            if row["svname"] not in ("FRONTEND", "BACKEND") and any(counts.values()):
                found.append(f"{row['pxname']}/{row['svname']} ({row['addr']}): {counts}")
        return found

    def routed_ports(self) -> set[int]:
        """The ports of the catalog's backends that get requests, as the running proxy has them."""
        from opsplane.config.loader import load
        from opsplane.drivers.traffic.routes import open_proxy

        driver = open_proxy(load(self.inventory_path), "edge", self.base)
        route = next(r for r in driver.current() if r.service == SERVICE)
        return {backend.port for backend in route.backends if backend.weight > 0}

    def snapshot(self) -> dict[str, Any]:
        """What a refused request or a dry run must leave as it was: the proxy's files, the
        releases recorded, each instance's pid, port and release, and the store's row counts."""
        instances = sorted((item["service"], item["instance"], item["pid"], item["port"], item["version"])
                           for item in self.ps())
        return {"proxy": self.proxy_files(), "releases": self.releases(), "instances": instances,
                **self.counts()}

    def own_instances(self) -> list[dict[str, Any]]:
        return [item for item in self.ps() if item["service"] == SERVICE]


class ServeLoggingToFile(Serve):
    """`Serve` with the output going to `serve.log` rather than to a pipe nobody reads while it
    runs: once a pipe's buffer is full, `serve` would stop in the middle of a step at its next
    log line; the file can also be read while it runs."""

    def start(self) -> None:
        self.log_path = self.workdir / "serve.log"
        argv = [sys.executable, "-m", "opsplane", "-c", str(self.inventory), "serve",
                "--port", str(self.port)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(argv, cwd=self.workdir, env=self.env, text=True, stdout=log,
                                            stderr=subprocess.STDOUT)
        wait_for(self._healthy, "serve to answer /health")

    def terminate(self) -> tuple[int, str]:
        code, _ = super().terminate()
        return code, self.log_path.read_text()


def _haproxy_stats(admin_socket: Path) -> list[dict[str, str]]:
    """`show stat` from HAProxy's runtime API: one row per frontend, backend and server."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect(str(admin_socket))
        connection.sendall(b"show stat\n")
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    header, *rows = data.decode().splitlines()
    names = header.lstrip("# ").split(",")
    return [dict(zip(names, row.split(","), strict=False)) for row in rows if row]


# --- load ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One request of the load: when it was sent and answered (Unix time), what came back."""

    sent: float
    answered: float
    status: int | None  # None: no answer at all
    version: str | None
    resent: bool = False
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status != 200 or not self.version


class Load:
    """GET requests at `rate` a second in all to `url`, from `clients` keep-alive clients in
    threads, each on its own schedule; every answer recorded.

    Like a browser, a client sends a GET once more on a new connection when the connection it
    used closed under it without an answer (an nginx reload closes idle client connections):
    that request is counted as resent, and fails only when the second try fails too."""

    def __init__(self, url: str, *, rate: float = 60.0, clients: int = 4) -> None:
        self.url, self.rate, self.clients = url, rate, clients
        self.answers: list[Answer] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True, name=f"load-{n}")
                         for n in range(clients)]
        self.started = self.ended = 0.0

    def __enter__(self) -> Load:
        self.started = time.time()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(20)
        self.ended = time.time()

    def _run(self, number: int) -> None:
        interval = self.clients / self.rate
        due = time.monotonic() + number * interval / self.clients
        with httpx.Client(trust_env=False, timeout=10) as client:
            while not self._stop.is_set():
                pause = due - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                due += interval
                answer = self._send(client)
                with self._lock:
                    self.answers.append(answer)

    def _send(self, client: httpx.Client) -> Answer:
        sent = time.time()
        resent = False
        try:
            try:
                response = client.get(self.url)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                resent = True
                response = client.get(self.url)
        except httpx.HTTPError as exc:
            return Answer(sent, time.time(), None, None, resent, f"{type(exc).__name__}: {exc}")
        error = "" if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:200]}"
        version = response.headers.get("X-Version")
        return Answer(sent, time.time(), response.status_code, version, resent, error)

    # --- what it saw --------------------------------------------------------------------------

    def recorded(self) -> list[Answer]:
        with self._lock:
            return sorted(self.answers, key=lambda a: a.sent)

    def failures(self) -> list[Answer]:
        return [a for a in self.recorded() if a.failed]

    def resent(self) -> int:
        return sum(1 for a in self.recorded() if a.resent)

    def achieved_rate(self) -> float:
        answers = self.recorded()
        seconds = (self.ended or time.time()) - self.started
        return len(answers) / seconds if seconds > 0 else 0.0

    def versions(self, since: float = 0.0, until: float = float("inf")) -> set[str | None]:
        """The releases that answered requests sent in [since, until)."""
        return {a.version for a in self.recorded() if since <= a.sent < until and not a.failed}

    def last_sent(self, version: str) -> float | None:
        """When the last request that `version` answered was sent."""
        times = [a.sent for a in self.recorded() if a.version == version]
        return max(times) if times else None

    def first_sent(self, version: str, since: float = 0.0) -> float | None:
        times = [a.sent for a in self.recorded() if a.version == version and a.sent >= since]
        return min(times) if times else None

    def summary(self) -> str:
        """The requests, their rate, and the failures: how many, when (Unix time) and why."""
        answers, failures = self.recorded(), self.failures()
        said = (f"{len(answers)} requests at {self.achieved_rate():.0f}/s, {len(failures)} failed, "
                f"{self.resent()} resent")
        if not failures:
            return said
        reasons = sorted({a.error[:120] for a in failures})
        return (f"{said}; failures sent from {failures[0].sent:.3f} to {failures[-1].sent:.3f}: "
                f"{'; '.join(reasons[:3])}")


# --- watching a deploy ---------------------------------------------------------------------


class StepClock:
    """Reads a deploy's row every `every` seconds in a thread and keeps when each step began
    (its `step_started_at`, which the store only holds while the step runs)."""

    def __init__(self, platform: DeployPlatform, deploy_id: int, every: float = 0.05) -> None:
        self.platform, self.deploy_id, self.every = platform, deploy_id, every
        self.began: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="step-clock")

    def __enter__(self) -> StepClock:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            step, started = self.platform.step_started(self.deploy_id)
            if started is not None:
                self.began.setdefault(step, started.timestamp())
            self._stop.wait(self.every)


def step_index(deploy: dict[str, Any], kind: str) -> int:
    """The number of the first step of `kind` in a deploy's plan."""
    return next(n for n, step in enumerate(deploy["steps"]) if step["kind"] == kind)


def instance_requests(port: int, route: str = MAIN_ROUTE) -> float:
    """Requests of `route` one catalog instance has answered, from its own /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, trust_env=False).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("http_requests_total{") and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


@contextlib.contextmanager
def running(platform: DeployPlatform, *, serve: bool = True) -> Iterator[DeployPlatform]:
    """`platform` started (with `serve` unless told not to), stopped on the way out; `serve`'s
    output then must hold no traceback."""
    try:
        platform.start(serve=serve)
        yield platform
    finally:
        output = platform.stop()
        assert "Traceback" not in output, output
