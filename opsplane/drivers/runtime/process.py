"""The `process` runtime: the inventory's components as local processes under a supervisor.

`ProcessRuntime` is the client side. It starts the supervisor daemon for the state directory
when needed (`up`, `scale`; a new one adopts what a dead one left running), sends it requests
over its socket, and reads what it can without it: the state file (so `down` still stops what a
dead supervisor left running) and the log files (so `logs` works whether or not anything runs).
It keeps the release each service runs (`releases.json`, `releases.py`) and builds every spec
with it, so an `up` after a deploy runs what was deployed.
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from opsplane.clock import SystemClock
from opsplane.config.models import Inventory
from opsplane.drivers.runtime.base import (
    InstanceStatus,
    LogLine,
    RuntimeFailure,
    RuntimeNotice,
    RuntimeNotRunning,
)
from opsplane.drivers.runtime.logfiles import read_logs
from opsplane.drivers.runtime.processes import (
    ProcessIdentity,
    is_alive,
    is_gone,
    session_members,
    stop_session,
)
from opsplane.drivers.runtime.protocol import (
    NotAnswering,
    StatePaths,
    SupervisorRefused,
    SupervisorStopping,
    call,
    read_state,
    write_state,
)
from opsplane.drivers.runtime.recorder import RuntimeEvent, write_events
from opsplane.drivers.runtime.releases import ReleaseBook, base_service, check_version, track_name
from opsplane.drivers.runtime.spec import ServiceSpec
from opsplane.drivers.traffic.routes import Share, managed_proxies, open_proxy, routes
from opsplane.errors import UsageError
from opsplane.runtime.restarts import RestartPolicy
from opsplane.runtime.selection import require, require_group, runnable, select
from opsplane.store import default_url

_PING_TIMEOUT = 3.0
_START_TIMEOUT = 20.0
_EXIT_TIMEOUT = 15.0
_ATTEMPTS = 3  # supervisors a request is sent to when the one that answers is stopping
MAX_INSTANCES = 100
_REQUEST_MARGIN = 30.0  # beyond the waits a request carries out, for the supervisor's own work
# what a refusal of each request says the supervisor could not do
_DOING = {"track": "run the track", "replace": "replace the instance"}


class ProcessRuntime:
    """Runs components with a `run` section as supervised local processes."""

    def __init__(self, inventory: Inventory, *, base_dir: Path, environ: Mapping[str, str],
                 actor: str = "system:runtime",
                 shares: Callable[[], Mapping[str, Share]] | None = None) -> None:
        self.inventory = inventory
        self.shares = shares  # how active deploys split requests, kept when a proxy's routes are rebuilt
        self.base_dir = base_dir
        self.environ = environ
        self.actor = actor
        self.paths = StatePaths(base_dir / inventory.runtime.state_dir)
        self.book = ReleaseBook(self.paths.releases)
        self.clock = SystemClock()

    # --- RuntimeDriver ------------------------------------------------------------------

    def up(self, services: Sequence[str] | None = None) -> None:
        """The services first, then the proxies in front of them, started with routes to the
        instances that now run (or, when they run already, given those routes)."""
        names = select(self.inventory, services)
        proxies = managed_proxies(self.inventory)
        own = [name for name in names if name not in proxies]
        if own:
            specs = [self.spec(name).as_dict() for name in own]
            self._call_supervisor({"op": "up", "services": specs}, timeout=self._stop_budget(own) + 30)
        fronting = {self.inventory.component(name).proxy for name in own}
        self.sync_proxies([p for p in proxies if p in names or p in fronting], start=True)

    def sync_proxies(self, names: Sequence[str] | None = None, *, start: bool = False,
                     keeping: Mapping[str, int] | None = None) -> None:
        """Give each managed proxy (or those named) the routes of what runs now, with the shares
        of deploys under way; with `start`, start a proxy that is not running. `keeping` maps a
        service to the instances it keeps: those numbered from there on, about to stop, are left
        out of the routes."""
        proxies = managed_proxies(self.inventory)
        wanted = [p for p in (proxies if names is None else names) if p in proxies]
        if not wanted:
            return
        statuses = [s for s in self.status() if s.instance < (keeping or {}).get(s.service, MAX_INSTANCES)]
        shares = self.shares() if self.shares else {}
        for name in wanted:
            driver = open_proxy(self.inventory, name, self.base_dir)
            found = routes(self.inventory, name, statuses, shares)
            if any(s.service == name and s.state in ("running", "starting") for s in statuses):
                driver.apply(found)
            elif start:
                driver.prepare(found)
                self._call_supervisor({"op": "up", "services": [self.spec(name).as_dict()]},
                                      timeout=self._stop_budget([name]) + 30)

    def down(self, services: Sequence[str] | None = None) -> None:
        self._down(select(self.inventory, services) if services else None)

    def _down(self, names: list[str] | None) -> None:
        """Stop the named groups (a service's name stands for its tracks too), or everything."""
        request = {"op": "down", "services": names}
        timeout = self._stop_budget(names or list(runnable(self.inventory))) + 15
        state = read_state(self.paths)
        try:
            reply = self._call(request, timeout=timeout)
        except NotAnswering:
            with self._starting():
                if self.supervisor_pid() is None:
                    state = read_state(self.paths)
                    if names is None:
                        self._stop_stuck_supervisor(state)
                    self._stop_orphans(state, names, reason="supervisor not running")
                    return
            # an `up` at the same moment started a supervisor meanwhile: the down is for it
            state = read_state(self.paths)
            reply = self._call(request, timeout=timeout, not_answering="down")
        if not reply.get("remaining"):
            self._wait_for_exit(state)

    def restart(self, service: str) -> None:
        require_group(self.inventory, service)
        instances = self._running_count(service)
        self._call({"op": "restart", "service": service},
                   timeout=instances * (self._stop_budget([service]) + 35), not_running=True)

    def scale(self, service: str, instances: int) -> None:
        require(self.inventory, service)
        if not 1 <= instances <= MAX_INSTANCES:
            raise UsageError(
                f"cannot scale {service} to {instances}: give a number of instances from 1 to "
                f"{MAX_INSTANCES} (to stop every instance: opsplane down {service})"
            )
        spec = self.spec(service)
        proxy = self.inventory.component(service).proxy
        if proxy is not None:
            self._drain_leaving(service, proxy, instances)
        self._call_supervisor({"op": "scale", "spec": spec.as_dict(), "instances": instances},
                              timeout=self._stop_budget([service]) + 45)
        if proxy is not None:
            self.sync_proxies([proxy])  # the new instances get requests, the stopped ones none

    def _drain_leaving(self, service: str, proxy: str, instances: int) -> None:
        """Before a scale down, take the instances it stops out of the proxy's routes, as a
        rolling deploy drains an instance before it replaces it: the proxy then never sends a
        request to an instance that is stopping (nothing to do when none runs)."""
        if instances >= self._running_count(service):
            return
        with contextlib.suppress(RuntimeNotRunning):
            self.sync_proxies([proxy], keeping={service: instances})

    def status(self) -> list[InstanceStatus]:
        try:
            reply = self._call({"op": "status"}, timeout=_PING_TIMEOUT * 3)
        except NotAnswering:
            raise self._not_running() from None
        return [InstanceStatus.from_dict(item) for item in reply["instances"]]

    def logs(
        self,
        service: str,
        since: datetime | None = None,
        grep: str | None = None,
        follow: bool = False,
        tail: int | None = None,
    ) -> Iterator[LogLine]:
        require_group(self.inventory, service)
        return read_logs(self.paths.logs, service, since=since, grep=grep, follow=follow, tail=tail)

    # --- releases, tracks and replacement -----------------------------------------------

    def releases(self) -> dict[str, str]:
        recorded = self.book.read()
        found = {}
        for name, component in runnable(self.inventory).items():
            version = recorded.get(name) or (component.run.version if component.run else None)
            if version:
                found[name] = version
        return found

    def set_release(self, service: str, version: str) -> None:
        require(self.inventory, service)
        before = self.book.record(service, version)
        if before != version:
            write_events(default_url(self.environ), [RuntimeEvent(
                "runtime.release_recorded", service, "ok", self.actor, self.clock.now(),
                {"from": before, "to": version})])

    def start_track(self, service: str, version: str, instances: int, *,
                    deadline: float = 60.0) -> list[InstanceStatus]:
        return self._track(service, version, instances, deadline, existing=False)

    def scale_track(self, service: str, version: str, instances: int, *,
                    deadline: float = 60.0) -> list[InstanceStatus]:
        return self._track(service, version, instances, deadline, existing=True)

    def stop_track(self, service: str, version: str) -> None:
        require(self.inventory, service)
        self._down([track_name(service, version)])

    def replace_instance(self, service: str, index: int, version: str, *,
                         deadline: float = 60.0) -> InstanceStatus:
        require_group(self.inventory, service)
        check_version(version)
        _check_deadline(deadline)
        request = {"op": "replace", "service": service, "instance": index, "version": version,
                   "timeout": deadline}
        reply = self._call(request, timeout=self._stop_budget([service]) + deadline + _REQUEST_MARGIN,
                           not_running=True)
        return InstanceStatus.from_dict(reply["instance"])

    def _track(self, service: str, version: str, instances: int, deadline: float, *,
               existing: bool) -> list[InstanceStatus]:
        require(self.inventory, service)
        check_version(version)
        _check_deadline(deadline)
        if not 1 <= instances <= MAX_INSTANCES:
            raise UsageError(f"cannot run {instances} instances of {track_name(service, version)}: give a "
                             f"number of instances from 1 to {MAX_INSTANCES}")
        spec = self.spec(service).track(version, instances)
        request = {"op": "track", "spec": spec.as_dict(), "instances": instances, "timeout": deadline,
                   "existing": existing}
        timeout = self._stop_budget([service]) + deadline + _REQUEST_MARGIN
        reply = (self._call(request, timeout=timeout, not_running=True) if existing
                 else self._call_supervisor(request, timeout=timeout))
        return [InstanceStatus.from_dict(item) for item in reply["instances"]]

    def watch(self) -> AsyncIterator[RuntimeNotice]:
        """The supervisor's notices (`watch.follow`): exits the moment it sees them, the state
        after each change; it is waited for when it is not running and followed again after
        a restart."""
        from opsplane.drivers.runtime.watch import follow

        return follow(self.paths)

    # --- helpers ------------------------------------------------------------------------

    def spec(self, name: str) -> ServiceSpec:
        """What the supervisor is told about component `name`: its settings, with its recorded
        release (else its run.version); for a proxy opsplane runs, its program in the foreground."""
        if name in managed_proxies(self.inventory):
            driver = open_proxy(self.inventory, name, self.base_dir)
            component = self.inventory.component(name)
            logs = self.inventory.proxies[name].logs
            return ServiceSpec(
                name=name, argv=tuple(driver.run_argv()), cwd=str(driver.directory),
                host=component.host or "127.0.0.1", port=None, wants_port=False, instances=1,
                policy=RestartPolicy(mode="always", initial=0.5, max_delay=10.0), stop_timeout=10.0,
                log_max_bytes=logs.max_bytes, log_backups=logs.backups, log_daily=logs.daily)
        return ServiceSpec.from_component(name, self.inventory.component(name), base_dir=self.base_dir,
                                          version=self.book.read().get(name))

    def supervisor_pid(self) -> int | None:
        """The pid of the supervisor answering on the socket, or None."""
        try:
            return int(self._call({"op": "ping"}, timeout=_PING_TIMEOUT)["pid"])
        except NotAnswering:
            return None

    def _call(self, request: dict[str, Any], *, timeout: float, not_running: bool = False,
              not_answering: str | None = None, next_supervisor: bool = False) -> dict[str, Any]:
        """One request; NotAnswering becomes RuntimeNotRunning with `not_running`, and a
        RuntimeFailure saying the supervisor did not answer the `not_answering` request.
        SupervisorStopping is raised only for a request that goes to the `next_supervisor` then."""
        try:
            return call(self.paths, {**request, "actor": self.actor}, timeout=timeout)
        except SupervisorStopping:
            if next_supervisor:
                raise
            raise RuntimeNotRunning(f"the supervisor for {self.paths.root} is stopping: every service was "
                                    "brought down; start them with `opsplane up`") from None
        except SupervisorRefused as exc:
            doing = _DOING.get(str(request["op"]), request["op"])
            raise RuntimeFailure(f"the supervisor could not {doing}: {exc}") from None
        except NotAnswering as exc:
            if not_running:
                raise self._not_running() from None
            if not_answering:
                raise self._no_answer(not_answering, exc) from None
            raise

    def _no_answer(self, op: str, exc: Exception) -> RuntimeFailure:
        return RuntimeFailure(f"the supervisor for {self.paths.root} did not answer the {op} request "
                              f"({exc}); see {self.paths.supervisor_log}")

    def _call_supervisor(self, request: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """Send a request that needs a supervisor, starting one when none runs. One that is
        stopping (a `down` left it nothing to run) refuses new work rather than accept it and
        stop it on its way out; the request then goes to the next supervisor, so an `up` that
        follows a `down` is carried out, never lost between them."""
        op = str(request["op"])
        for _ in range(_ATTEMPTS):
            self._ensure_supervisor()
            try:
                return self._call(request, timeout=timeout, next_supervisor=True)
            except SupervisorStopping:
                pass
            except NotAnswering as exc:  # gone between the ping and the request: try the next one
                if self.supervisor_pid() is not None:
                    raise self._no_answer(op, exc) from None
            with self._starting():  # the next one can start once this one has exited
                self._await_lock_released()
        raise RuntimeFailure(f"the supervisor for {self.paths.root} stopped {_ATTEMPTS} times while "
                             f"asked to {op}; nothing was changed, try again")

    def _running_count(self, service: str) -> int:
        state = read_state(self.paths) or {}
        return max(1, len(state.get("services", {}).get(service, {}).get("instances", [])))

    def _stop_budget(self, names: Sequence[str]) -> float:
        """Longest a stop of these services may take: their longest stop_timeout and a margin."""
        services = runnable(self.inventory)
        timeouts = [run.stop_timeout for name in names
                    if (component := services.get(base_service(name))) and (run := component.run)]
        return max(timeouts, default=10.0) + 5.0

    @contextlib.contextmanager
    def _starting(self) -> Iterator[None]:
        """Held while a supervisor is checked, cleaned up after or started, so two commands at
        once neither start two supervisors nor take a starting one for a dead one."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with (self.paths.root / "start.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _ensure_supervisor(self) -> None:
        if self.supervisor_pid() is not None:
            return
        with self._starting():
            if self.supervisor_pid() is None:
                self._start_supervisor()

    def _start_supervisor(self) -> None:
        """Start a supervisor; it adopts what the state file says a dead one left running."""
        self._stop_stuck_supervisor(read_state(self.paths))
        self._await_lock_released()
        env = {**self.environ, "OPSPLANE_DATABASE_URL": default_url(self.environ)}
        started = subprocess.run(  # noqa: S603 - our own module, argument list
            [sys.executable, "-m", "opsplane.drivers.runtime.supervisor",
             "--state-dir", str(self.paths.root), "--detach"],
            env=env, cwd=self.base_dir, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=_START_TIMEOUT,
        )
        if started.returncode != 0:
            raise RuntimeFailure(
                f"cannot start the supervisor for {self.paths.root}: "
                f"{started.stderr.strip() or 'no reason given'}"
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while self.supervisor_pid() is None:
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"the supervisor for {self.paths.root} started but does not answer; "
                                     f"see {self.paths.supervisor_log}")
            time.sleep(0.05)

    def _stop_stuck_supervisor(self, state: dict[str, Any] | None) -> None:
        """A supervisor that is alive but does not answer is ended (it would hold the lock)."""
        recorded = (state or {}).get("supervisor") or {}
        if not recorded.get("pid"):
            return
        identity = ProcessIdentity(int(recorded["pid"]), float(recorded.get("create_time") or 0))
        if is_alive(identity):
            stop_session(identity, 10.0)

    def _await_lock_released(self) -> None:
        """A supervisor on its way out holds `supervisor.lock` until it has written its last
        events; the new one needs it."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _EXIT_TIMEOUT
        with self.paths.lock.open("a") as lock:
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise RuntimeFailure(
                            f"the supervisor for {self.paths.root} is stopping and did not exit within "
                            f"{_EXIT_TIMEOUT:g}s; see {self.paths.supervisor_log}") from None
                    time.sleep(0.05)
                    continue
                fcntl.flock(lock, fcntl.LOCK_UN)
                return

    def _stop_orphans(
        self, state: dict[str, Any] | None, names: Sequence[str] | None, *, reason: str
    ) -> None:
        """Stop what a supervisor that is gone left running; record one event per service."""
        if not state:
            return
        services: dict[str, Any] = state.get("services", {})
        events = []
        for name in [n for n in services if names is None or n in names or base_service(n) in names]:
            stop_timeout = float(services[name].get("spec", {}).get("stop_timeout", 10.0))
            pids = []
            for item in services[name].get("instances", []):
                if not item.get("pid") or not item.get("create_time"):
                    continue
                identity = ProcessIdentity(int(item["pid"]), float(item["create_time"]))
                if session_members(identity) and stop_session(identity, stop_timeout):
                    pids.append(identity.pid)
            if pids:
                events.append(RuntimeEvent("runtime.stopped", name, "ok", self.actor, self.clock.now(),
                                           {"pids": pids, "instances": len(pids), "reason": reason}))
            del services[name]
        if events:
            write_events(default_url(self.environ), events)
        if services:
            write_state(self.paths, state)
        else:
            self.paths.state.unlink(missing_ok=True)

    def _wait_for_exit(self, state: dict[str, Any] | None) -> None:
        pid = ((state or {}).get("supervisor") or {}).get("pid")
        deadline = time.monotonic() + _EXIT_TIMEOUT
        while pid and not is_gone(int(pid)):
            if time.monotonic() > deadline:
                raise RuntimeFailure(f"the supervisor (pid {pid}) stopped every service but did not exit")
            time.sleep(0.05)

    def _not_running(self) -> RuntimeNotRunning:
        orphans = self._orphans(read_state(self.paths))
        where = self.paths.root
        if not orphans:
            return RuntimeNotRunning(
                f"no supervisor is running for {where}: nothing started by `opsplane up` runs; "
                "start the services with `opsplane up`"
            )
        listed = ", ".join(f"{o.name} (pid {o.pid})" for o in orphans)
        return RuntimeNotRunning(
            f"the supervisor for {where} is not running, but processes it started are still alive "
            f"and no longer restarted: {listed}; `opsplane up` starts a supervisor that adopts them, "
            "`opsplane down` stops them",
            orphans,
        )

    def _orphans(self, state: dict[str, Any] | None) -> list[InstanceStatus]:
        found = []
        for service in ((state or {}).get("services") or {}).values():
            for item in service.get("instances", []):
                if item.get("pid") and item.get("create_time") and is_alive(
                        ProcessIdentity(int(item["pid"]), float(item["create_time"]))):
                    found.append(InstanceStatus.from_dict(item))
        return found


def _check_deadline(deadline: float) -> None:
    if not deadline > 0:
        raise UsageError(f"a deadline of {deadline!r} seconds leaves no time to wait: give a positive number")
