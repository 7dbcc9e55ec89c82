"""The deploy's `Platform` on real parts: the process runtime, the proxy in front of the service,
its health checks, the samples `serve` scrapes, and the store's incidents and alerts."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.clock import Clock
from opsplane.config.models import Inventory
from opsplane.deploy.analysis import Interval
from opsplane.deploy.models import DeploySettings
from opsplane.deploy.runner import StepFailed
from opsplane.deploy.tables import DeployRow
from opsplane.deploy.traffic import active_shares
from opsplane.drivers.runtime.base import InstanceStatus, RuntimeDriver, RuntimeFailure
from opsplane.drivers.runtime.releases import track_name
from opsplane.drivers.traffic import routes as traffic
from opsplane.drivers.traffic.routes import Share
from opsplane.errors import OpsplaneError
from opsplane.health.models import State
from opsplane.health.targets import CheckTarget, check_targets

PROBE_EVERY = 5.0  # seconds between health probes of the same new instances while a step watches
Samples = Callable[[], Any]  # the locked sample source, or None when nothing is scraped


class LivePlatform:
    """`runner.Platform` over the runtime driver, the proxies and the store."""

    def __init__(self, inventory: Inventory, settings: DeploySettings, runtime: RuntimeDriver, *,
                 base_dir: Path, env: str | None, clock: Clock, samples: Samples | None = None,
                 environ: dict[str, str] | None = None,
                 sessions: Callable[[], AbstractContextManager[Session]] | None = None) -> None:
        self.sessions = sessions
        self.inventory = inventory
        self.settings = settings
        self.runtime: Any = runtime
        self.base_dir = base_dir
        self.env = env
        self.clock = clock
        self.samples = samples
        self.environ = environ
        self._shares: dict[str, Share] = {}  # set by this process's steps
        self._probed: dict[str, tuple[float, str | None]] = {}

    # --- reading ----------------------------------------------------------------------------

    def blocking(self, service: str) -> list[str]:
        from opsplane.deploy.gates import GateContext, blocking

        assert self.sessions is not None
        with self.sessions() as session:
            return blocking(GateContext(self.inventory, session, service, self.clock.now()))

    def p0_alerts(self, service: str, since: datetime) -> list[str]:
        from opsplane.alerts.tables import AlertRow

        assert self.sessions is not None
        with self.sessions() as session:
            firing = session.scalars(select(AlertRow).where(AlertRow.state == "firing"))
            return [alert.rule for alert in firing
                    if (alert.labels or {}).get("severity") == "P0"
                    and (alert.labels or {}).get("service") == service]

    def main_versions(self, service: str) -> dict[int, str | None]:
        return {s.instance: s.version for s in self.runtime.status() if s.service == service}

    def healthy(self, service: str) -> str | None:
        return self._probe(check_targets(self.inventory, self.env, only={service}))

    def extra_healthy(self, service: str, version: str) -> str | None:
        extra = [s for s in self.runtime.status() if s.service == track_name(service, version)]
        if not extra:
            return f"no instance of {version} runs"
        down = [s for s in extra if s.state != "running"]
        if down:
            return "; ".join(f"{s.name} is {s.state}" + (f" ({s.last_exit})" if s.last_exit else "")
                             for s in down)
        key = track_name(service, version)
        last = self._probed.get(key)
        if last is not None and time.monotonic() - last[0] < PROBE_EVERY:
            return last[1]  # steps that watch ask every round; the instances are probed less often
        found = self._probe(self._instance_targets(service, extra))
        self._probed[key] = (time.monotonic(), found)
        return found

    def intervals(self, service: str, versions: Sequence[str], start: datetime, end: datetime,
                  interval: float) -> dict[str, list[Interval]]:
        from opsplane.deploy.collect import intervals

        source = self.samples() if self.samples else None
        if source is None:
            return {version: [] for version in versions}
        return intervals(source, service, versions, start=start.timestamp(), end=end.timestamp(),
                         interval=interval)

    # --- changing -----------------------------------------------------------------------------

    def start(self, service: str, version: str, instances: int) -> list[str]:
        try:
            started = self.runtime.start_track(service, version, instances,
                                               deadline=self.settings.health_timeout)
        except RuntimeFailure as exc:
            raise StepFailed(_start_failure(version, str(exc), self._last_error(service, version))) from exc
        try:
            self._wait_healthy(service, started)
            self._watch_new(service, version)
        except StepFailed as exc:
            said = self._last_error(service, version)
            raise StepFailed(f"{version} started, then failed: {exc}"
                             + (f"; its last error: {said}" if said else "")) from None
        return [s.name for s in started]

    def stop_extra(self, service: str, version: str) -> None:
        if any(s.service == track_name(service, version) for s in self.runtime.status()):
            self.runtime.stop_track(service, version)
        self._shares.pop(service, None)
        self._apply(service)

    def smoke(self, service: str, version: str) -> list[str]:
        failures = []
        extra = [s for s in self.runtime.status() if s.service == track_name(service, version)]
        for test in self.settings.for_service(service).smoke:
            for instance in extra:
                problem = _smoke_one(test, instance, version)
                if problem:
                    failures.append(f"{test.name} on {instance.name}: {problem}")
        return failures

    def shift(self, service: str, version: str, percent: float, *,
              drained: Sequence[int] = ()) -> dict[str, Any]:
        self._shares[service] = (version, percent, tuple(drained))
        return self._apply(service)

    def replace(self, service: str, index: int, version: str) -> None:
        try:
            status = self.runtime.replace_instance(service, index, version)
        except RuntimeFailure as exc:
            raise StepFailed(_start_failure(version, str(exc), self._last_error(service, version))) from exc
        self._wait_healthy(service, [status])

    def set_release(self, service: str, version: str) -> None:
        self.runtime.set_release(service, version)

    def open_incident(self, session: Session, deploy: DeployRow, reason: str, severity: str) -> int | None:
        """Join the service's open incident with a note naming the deploy, or open one."""
        from opsplane.incidents import service as incidents
        from opsplane.incidents.tables import IncidentRow

        now = self.clock.now()
        open_row = session.scalar(select(IncidentRow).where(
            IncidentRow.service == deploy.service, IncidentRow.status != "resolved").order_by(IncidentRow.id))
        if open_row is not None:
            incidents.add_note(session, incident_id=open_row.id, text=f"deploy {deploy.id}: {reason}",
                               actor="system:deploy", now=now)
            return int(open_row.id)
        title = f"{reason}"[:300]
        opened = incidents.create(session, title=title, service=deploy.service, severity=severity,
                                  actor="system:deploy", now=now, settings=self.inventory.incidents,
                                  group=f"deploy:{deploy.service}")
        return int(opened.id)

    def shares(self) -> dict[str, Share]:
        """The share of every deploy under way: from the store, so that a `serve` started again
        in the middle of a deploy keeps the other services' splits when it rewrites a proxy, and
        from the steps this process took, which also know the instances drained right now."""
        shares: dict[str, Share] = {}
        if self.sessions is not None:
            with self.sessions() as session:
                shares.update(active_shares(session))
        shares.update(self._shares)
        return shares

    # --- helpers ------------------------------------------------------------------------------

    def _apply(self, service: str) -> dict[str, Any]:
        """Render and apply the routes of the proxy that fronts `service`; the proven split."""
        proxy_name = self.inventory.component(service).proxy
        if proxy_name is None:
            return {}
        driver, wanted = traffic.apply_proxy(self.inventory, proxy_name, self.runtime.status(), self.shares(),
                                             base_dir=self.base_dir)
        route = next(r for r in wanted if r.service == service)
        split = driver.verify(route, requests=100, path=_probe_path(self.inventory, service))
        return {"answers": dict(split.versions), "failed": split.failures}

    def _instance_targets(self, service: str, statuses: Sequence[InstanceStatus]) -> list[CheckTarget]:
        targets = [t for t in check_targets(self.inventory, self.env, only={service})
                   if t.type in ("http", "tcp")]
        return [dataclasses.replace(t, host="127.0.0.1", port=s.port, url=_instance_url(t, s.port),
                                    name=f"{t.name}@{s.name}")
                for t in targets for s in statuses if s.port]

    def _probe(self, targets: list[CheckTarget]) -> str | None:
        from opsplane.health.flows import probe_all

        if not targets:
            return None
        results = asyncio.run(probe_all(targets, environ=self.environ))
        bad = [f"{target.component}/{target.name}: {results[target.id].reason}" for target in targets
               if results[target.id].state not in (State.OK, State.WARNING)]
        return "; ".join(bad) or None

    def _watch_new(self, service: str, version: str) -> None:
        """Return once every extra instance of `version`, healthy now, has kept running for
        `healthy_for` seconds and still passes its checks; StepFailed naming the instances that
        ended, and how, or the checks that fail otherwise."""
        track = track_name(service, version)
        until = time.monotonic() + self.settings.healthy_for
        while True:
            extra = [s for s in self.runtime.status() if s.service == track]
            ended = [s for s in extra if s.state != "running" or s.restarts]
            if not extra or ended:
                raise StepFailed("; ".join(_ended(s) for s in ended) or f"no instance of {track} runs")
            left = until - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(0.5, left))
        problem = self._probe(self._instance_targets(service, extra))
        if problem:
            raise StepFailed(f"its checks fail {self.settings.healthy_for:g} s later: {problem}")

    def _last_error(self, service: str, version: str) -> str | None:
        """The last error line the instances of `version` wrote (their own words on why they
        stopped), or None."""
        from opsplane.runtime.logscan import error_kind

        group = track_name(service, version)
        try:
            lines = list(self.runtime.logs(group, tail=200))
        except (OpsplaneError, OSError):
            return None
        errors = [line.text.strip() for line in lines if error_kind(line.text)]
        return errors[-1][:300] if errors else None

    def _wait_healthy(self, service: str, statuses: Sequence[InstanceStatus]) -> None:
        deadline = time.monotonic() + self.settings.health_timeout
        targets = self._instance_targets(service, statuses)
        while True:
            problem = self._probe(targets)
            if problem is None:
                return
            alive = {s.name: s for s in self.runtime.status()}
            # ended, or restarted since it was started: a release that crashes as it comes up
            # is not waited for until the health timeout, however quickly the runtime restarts it
            gone = [s for s in statuses if alive.get(s.name) is None or alive[s.name].state in
                    ("failed", "backoff", "stopped") or alive[s.name].restarts > s.restarts]
            if gone or time.monotonic() >= deadline:
                exits = "; ".join(_ended(alive[s.name]) for s in gone if s.name in alive)
                raise StepFailed(f"{', '.join(s.name for s in statuses)} did not become healthy: "
                                 f"{exits or problem}")
            time.sleep(0.5)


def _instance_url(target: CheckTarget, port: int) -> str | None:
    """An HTTP check's URL pointed at one instance: its path, on the instance's own port."""
    path = getattr(target.check, "path", None)
    if target.type != "http" or path is None:
        return None
    return f"{target.check.scheme}://127.0.0.1:{port}/{str(path).lstrip('/')}"  # type: ignore[attr-defined]


def _probe_path(inventory: Inventory, service: str) -> str:
    for check in inventory.component(service).checks:
        path = getattr(check, "path", None)
        if path:
            return str(path)
    return "/"


def _start_failure(version: str, message: str, logged: str | None) -> str:
    """Why `version` did not start: the runtime's account, and the last error its instances
    logged, which names a failed migration when that is what stopped them."""
    if logged is None:
        return f"{version} did not start: {message}"
    if "migration" in logged.lower():
        return f"the migration of {version} failed: {logged}; {message}"
    return f"{version} did not start: {message}; its last error: {logged}"


def _ended(status: InstanceStatus) -> str:
    """'catalog@v2.0 exited (exit 1), now backoff': how an instance that should run ended."""
    how = f"exited ({status.last_exit})" if status.last_exit else "stopped"
    restarts = f", restarted {status.restarts} time{'s' if status.restarts != 1 else ''}" \
        if status.restarts else ""
    return f"{status.name} {how}{restarts}, now {status.state}"


def _smoke_one(test: Any, instance: InstanceStatus, version: str) -> str | None:
    if test.path is not None:
        try:
            answer = httpx.get(f"http://127.0.0.1:{instance.port}{test.path}", timeout=5, trust_env=False)
        except httpx.HTTPError as exc:
            return str(exc)
        if answer.status_code != test.expect_status:
            return f"HTTP {answer.status_code}, expected {test.expect_status}"
        if test.contains and test.contains not in answer.text:
            return f"the answer does not contain {test.contains!r}"
        return None
    values = {"host": "127.0.0.1", "port": str(instance.port), "version": version}
    argv = list(test.argv)
    for key, value in values.items():
        argv = [part.replace("{" + key + "}", value) for part in argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0:
        return f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
    return None
