"""The faults a game day injects, each one validated before it acts and undone from a record.

`open_fault` gives the `Fault` of a scenario; `check()` refuses (FaultRefused, nothing changed)
what cannot be played here; `inject()` does it and returns the record of what it changed (a
JSON document, stored with the run before anything else happens), and `undo(record)` puts it
back from that record alone, so a game day cut off by a crash is undone by whoever finds it.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from opsplane.config.models import Inventory
from opsplane.errors import OpsplaneError
from opsplane.gameday.datastores import FaultRefused
from opsplane.gameday.models import SHOP_ADMIN_ENV, Scenario

SCRATCH_PREFIX = ".opsplane-gameday-"
_HTTP_TIMEOUT = 5.0
UP_TIMEOUT = 60.0  # how long undoing a kill waits for the instances to answer again


class Fault(Protocol):
    def check(self) -> None:
        """FaultRefused with the reason when the fault cannot be injected here."""

    def inject(self) -> dict[str, Any]:
        """Inject the fault; the record `undo` needs."""

    def undo(self, record: Mapping[str, Any]) -> str:
        """Undo what `inject` recorded; what was done, in a sentence."""


@dataclass(frozen=True)
class Where:
    """What a fault acts with: the inventory, its directory and environment, who acts, and the
    game day's number (for scratch names)."""

    inventory: Inventory
    base_dir: Path
    environ: Mapping[str, str]
    actor: str
    run_id: int = 0


def open_fault(scenario: Scenario, where: Where) -> Fault:
    """The fault of `scenario`'s kind; FaultRefused when its target is not of the right kind."""
    kinds: dict[str, tuple[str, Any]] = {"kill": ("services", Kill), "errors": ("services", ShopFault),
             "latency": ("services", ShopFault),
             "stop-database": ("databases", StopServer), "stop-cache": ("caches", StopServer),
             "fill-disk": ("hosts", FillDisk)}
    section, factory = kinds[scenario.kind]
    if scenario.target not in getattr(where.inventory, section):
        names = ", ".join(getattr(where.inventory, section)) or "none"
        raise FaultRefused(f"{scenario.kind} needs one of the inventory's {section} as its target, not "
                           f"{scenario.target!r} (there: {names})")
    fault: Fault = factory(scenario, where)
    return fault


def _runtime(where: Where) -> Any:
    from opsplane.drivers.runtime.factory import open_runtime

    return open_runtime(where.inventory, base_dir=where.base_dir, environ=where.environ, actor=where.actor)


def _running(where: Where, service: str) -> list[Any]:
    return [s for s in _runtime(where).status() if s.service == service and s.state == "running"]


class Kill:
    """The service's instances stopped through the runtime (`opsplane down SERVICE`); undone by
    starting them again (`opsplane up SERVICE`)."""

    def __init__(self, scenario: Scenario, where: Where) -> None:
        self.service, self.where = scenario.target, where

    def check(self) -> None:
        if self.where.inventory.services[self.service].run is None:
            raise FaultRefused(f"{self.service} has no run section: opsplane's runtime does not run it, "
                               "so a game day cannot stop it")
        if not _running(self.where, self.service):
            raise FaultRefused(f"no instance of {self.service} is running now (`opsplane ps` shows whether "
                               f"the runtime is restarting it): play it once one runs, or start one "
                               f"(opsplane up {self.service})")

    def inject(self) -> dict[str, Any]:
        count = len(_running(self.where, self.service))
        _runtime(self.where).down([self.service])
        return {"service": self.service, "instances": count}

    def undo(self, record: Mapping[str, Any]) -> str:
        from opsplane.runtime.flows import await_settled

        service = str(record["service"])
        driver = _runtime(self.where)
        driver.up([service])
        states = [s.state for s in await_settled(driver, [service], timeout=UP_TIMEOUT)]
        running = sum(1 for state in states if state == "running")
        return f"{service} started again ({running} of {len(states)} instances running)"


class ShopFault:
    """Errors or latency through the shop's own fault injection (`PUT /admin/faults` on every
    running instance); undone by putting back the plan each instance had."""

    def __init__(self, scenario: Scenario, where: Where) -> None:
        self.scenario, self.where = scenario, where
        self.service = where.inventory.services[scenario.target]

    def _token(self) -> str:
        run = self.service.run
        if run is None or SHOP_ADMIN_ENV not in run.secret_env:
            raise FaultRefused(f"{self.scenario.target} has no fault injection opsplane can reach: its run "
                               f"section gives it no {SHOP_ADMIN_ENV} (the shop's admin token)")
        from opsplane.errors import SecretError

        try:
            return run.secret_env[SHOP_ADMIN_ENV].resolve(dict(self.where.environ))  # type: ignore[attr-defined]
        except SecretError as exc:
            raise FaultRefused(f"{self.scenario.target}'s admin token: {exc}") from None

    def _plan(self) -> dict[str, Any]:
        routes = self.scenario.routes or ["*"]
        if self.scenario.kind == "errors":
            ratio = 0.5 if self.scenario.ratio is None else self.scenario.ratio
            return {"error_ratio": {route: ratio for route in routes}}
        delay = 2.0 if self.scenario.delay is None else self.scenario.delay
        return {"latency_ms": {route: delay * 1000.0 for route in routes}}

    def _ports(self) -> list[int]:
        ports = [s.port for s in _running(self.where, self.scenario.target) if s.port]
        if not ports:
            raise FaultRefused(f"no instance of {self.scenario.target} is running: start it first")
        return ports

    def check(self) -> None:
        self._token()
        self._ports()

    def inject(self) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {self._token()}"}
        previous: dict[str, Any] = {}
        with httpx.Client(trust_env=False, timeout=_HTTP_TIMEOUT) as client:
            for port in self._ports():
                url = f"http://127.0.0.1:{port}/admin/faults"
                before = client.get(url, headers=headers)
                _answered(before, port)
                previous[str(port)] = before.json()
                _answered(client.put(url, headers=headers, json=self._plan()), port)
        return {"service": self.scenario.target, "plan": self._plan(), "previous": previous}

    def undo(self, record: Mapping[str, Any]) -> str:
        import httpx

        headers = {"Authorization": f"Bearer {self._token()}"}
        cleared, gone = [], []
        with httpx.Client(trust_env=False, timeout=_HTTP_TIMEOUT) as client:
            for port, plan in dict(record.get("previous") or {}).items():
                url = f"http://127.0.0.1:{port}/admin/faults"
                try:
                    _answered(client.put(url, headers=headers, json=plan), int(port))
                    cleared.append(port)
                except (httpx.HTTPError, OpsplaneError):
                    gone.append(port)  # an instance restarted since starts with no faults
        left = f"; not reached (restarted instances start without faults): {', '.join(gone)}" if gone else ""
        return f"the faults of {record.get('service')} put back on port {', '.join(cleared) or '-'}{left}"


def _answered(answer: Any, port: int) -> None:
    if answer.status_code != 200:
        raise OpsplaneError(f"the shop's fault injection on port {port} answered HTTP {answer.status_code}: "
                            f"{answer.text[:200]}")


class StopServer:
    """The component's PostgreSQL or Redis server stopped, when opsplane started it (see
    `datastores`); undone by starting it again as it was started."""

    def __init__(self, scenario: Scenario, where: Where) -> None:
        self.scenario, self.where = scenario, where
        self.kind = "postgres" if scenario.kind == "stop-database" else "redis"

    def _server(self) -> Any:
        from opsplane.gameday.datastores import owned_server

        component = self.where.inventory.component(self.scenario.target)
        host = component.host or _environment_host(self.where.inventory) or "127.0.0.1"
        return owned_server(self.where.base_dir, name=self.scenario.target, kind=self.kind, host=host,
                            port=component.port)

    def check(self) -> None:
        self._server()

    def inject(self) -> dict[str, Any]:
        from opsplane.gameday import datastores

        process = self._server()
        if self.kind == "postgres":
            return datastores.stop_postgres(process)
        cache = self.where.inventory.caches[self.scenario.target]
        password = cache.password.resolve(dict(self.where.environ)) if cache.password else None  # type: ignore[attr-defined]
        return datastores.stop_redis(process, port=int(cache.port or 6379), password=password)

    def undo(self, record: Mapping[str, Any]) -> str:
        from opsplane.gameday import datastores

        if record.get("server") == "postgres":
            return datastores.start_postgres(dict(record), self.where.base_dir)
        return datastores.start_redis(dict(record), self.where.base_dir)


def _environment_host(inventory: Inventory) -> str | None:
    env = inventory.environments.get(inventory.platform.default_environment)
    return env.host if env is not None else None


class FillDisk:
    """A file written into a scratch directory on the disk the host's check watches, up to
    `size` (default: enough to pass the check's disk_critical); undone by removing the scratch
    directory."""

    def __init__(self, scenario: Scenario, where: Where) -> None:
        self.scenario, self.where = scenario, where
        checks = [c for c in where.inventory.hosts[scenario.target].checks if c.type == "host"]
        self.check_model: Any = checks[0] if checks else None

    def _directory(self) -> Path:
        given = Path(self.scenario.directory) if self.scenario.directory else self.where.base_dir
        return given if given.is_absolute() else self.where.base_dir / given

    def _size(self) -> int:
        import psutil

        watched = self.check_model.path
        if self.scenario.size is not None:
            size = int(self.scenario.size)
        else:
            usage = psutil.disk_usage(watched)
            total = usage.used + usage.free  # the share the check reads: used / (used + free)
            size = max(1, math.ceil((min(self.check_model.disk_critical + 0.02, 0.99)) * total - usage.used))
        if size > self.scenario.max_size:
            raise FaultRefused(f"filling the disk at {watched} past its critical level needs {size} bytes, "
                               f"more than max_size ({self.scenario.max_size}): give a size or a "
                               "larger max_size")
        return size

    def check(self) -> None:
        if self.check_model is None:
            raise FaultRefused(f"host {self.scenario.target} has no host check: nothing watches its disk")
        directory = self._directory()
        if not directory.is_dir():
            raise FaultRefused(f"the scratch directory's parent {directory} does not exist")
        if os.stat(directory).st_dev != os.stat(self.check_model.path).st_dev:
            raise FaultRefused(f"{directory} is not on the disk {self.scenario.target}'s host check watches "
                               f"({self.check_model.path}): a file there would not fill it")
        size = self._size()
        if size > shutil.disk_usage(directory).free:
            raise FaultRefused(f"{size} bytes do not fit in {directory}")

    def inject(self) -> dict[str, Any]:
        size = self._size()
        scratch = self._directory() / f"{SCRATCH_PREFIX}{self.where.run_id}"
        scratch.mkdir(exist_ok=True)
        record = {"scratch": str(scratch), "bytes": size}
        try:
            _fill(scratch / "fill", size)
        except OSError:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return record

    def undo(self, record: Mapping[str, Any]) -> str:
        scratch = Path(str(record["scratch"]))
        if not scratch.name.startswith(SCRATCH_PREFIX):  # only ever what inject made
            raise OpsplaneError(f"{scratch} is not a game day's scratch directory: left as it is")
        shutil.rmtree(scratch, ignore_errors=True)
        return f"{scratch} removed ({record.get('bytes')} bytes given back)"


def _fill(path: Path, size: int) -> None:
    """`size` bytes on the disk for real: allocated at once where the file system can, written
    otherwise."""
    with open(path, "wb") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, size)
            return
        except OSError:
            pass
        chunk = b"\0" * (1 << 20)
        left = size
        while left > 0:
            written = file.write(chunk[:min(left, len(chunk))])
            left -= written
        file.flush()
        with contextlib.suppress(OSError):
            os.fsync(file.fileno())
