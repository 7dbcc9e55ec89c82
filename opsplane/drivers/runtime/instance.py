"""One supervised instance of a service: start it, log its output, watch it, restart it.

An `Instance` lives inside the supervisor's event loop. Its task starts the program in a
session of its own, its stdout and stderr going to the run's log writer (`output.py`), marks it
running once its port answers, and sees it end through its pidfd (`exits.py`): the main process
itself, not its output closing, which a worker it forked may hold on to. It then ends what is
left of the session, lets the writer copy the last lines, records the exit and asks
`opsplane.runtime.restarts.decide` whether and when to start it again. `stop()` ends it: SIGTERM
to the process group, SIGKILL after the service's stop_timeout, and SIGKILL to anything of its
session still left. `adopt()` takes over a process a supervisor that is gone started.

Each instance runs a release of its own (`version`, the `{version}` placeholder): its group's
when it was made, another once a rolling deploy replaced it (`replace()`). It keeps it across
restarts and, through the state file, across supervisors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import psutil

from opsplane.clock import Clock
from opsplane.config.types import SecretRef
from opsplane.drivers.runtime.base import InstanceState, InstanceStatus
from opsplane.drivers.runtime.exits import ProcessWatch
from opsplane.drivers.runtime.logwriter import log_path
from opsplane.drivers.runtime.output import LogWriter
from opsplane.drivers.runtime.processes import ProcessIdentity, describe_exit, identify, signal_session
from opsplane.drivers.runtime.spec import ServiceSpec, substitute
from opsplane.errors import SecretError
from opsplane.runtime.restarts import Run, decide

log = logging.getLogger("opsplane.runtime")

SYSTEM_ACTOR = "system:runtime"
# opsplane's own settings are not the services' business (the store URL may hold a password)
HIDDEN_VARIABLES = frozenset({"OPSPLANE_DATABASE_URL"})
_HISTORY_KEPT = 200
_DRAIN_SECONDS = 2.0
# the exit of a process the supervisor did not start: only its parent can learn the status
UNKNOWN_EXIT = "exit status unknown"


class Recorder(Protocol):
    def record(self, kind: str, *, service: str, outcome: str, actor: str,
               details: dict[str, Any] | None = None) -> None: ...


class Instance:
    def __init__(
        self,
        spec: ServiceSpec,
        index: int,
        port: int | None,
        *,
        log_dir: Path,
        environ: Mapping[str, str],
        recorder: Recorder,
        clock: Clock,
        on_change: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.index = index
        self.port = port
        self.version = spec.version
        self.environ = environ
        self.recorder = recorder
        self.clock = clock
        self.on_change = on_change
        self.state: str = InstanceState.STOPPED
        self.identity: ProcessIdentity | None = None
        self.started_at: datetime | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self.last_pid: int | None = None
        self.history: list[Run] = []
        self.rss_bytes: int | None = None
        self.cpu_percent: float | None = None
        self._sampled: dict[int, psutil.Process] = {}
        self._task: asyncio.Task[None] | None = None
        self._pid: int | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._log_path = log_path(log_dir, spec.name, index)
        self._popen: subprocess.Popen[bytes] | None = None  # None for an adopted process
        self._watch: ProcessWatch | None = None
        self._writer: LogWriter | None = None

    # --- what the supervisor asks -------------------------------------------------------

    @property
    def active(self) -> bool:
        """Whether it is supervised now (running, starting or waiting to restart)."""
        return self._task is not None and not self._task.done()

    @property
    def pid(self) -> int | None:
        """The pid of the current process, from its start until its exit has been handled (so a
        status never shows a running state without a pid)."""
        return self._pid

    def status(self) -> InstanceStatus:
        return InstanceStatus(
            service=self.spec.name, instance=self.index, pid=self.pid, port=self.port,
            state=str(self.state), started_at=self.started_at if self.pid else None,
            restarts=self.restarts, rss_bytes=self.rss_bytes, cpu_percent=self.cpu_percent,
            last_exit=self.last_exit, version=self.version,
        )

    def recorded(self) -> dict[str, Any]:
        """The status plus the create time and the log writer, as the state file keeps it (what a
        supervisor needs to adopt the process)."""
        data = self.status().as_dict()
        data.pop("uptime")
        data["create_time"] = self.identity.create_time if self.identity and self.pid else None
        data["writer"] = self._writer.recorded() if self._writer is not None and self.pid else None
        return data

    def start(self, actor: str, *, kind: str = "runtime.started", reason: str | None = None,
              details: Mapping[str, Any] | None = None) -> None:
        """Begin supervising; a fresh start forgets the crash history. No-op when active.
        `details` are added to the event of the first start."""
        if self.active:
            return
        self._stopping = False
        self._wake.clear()
        self.history.clear()
        self.state = InstanceState.STARTING
        self._task = asyncio.create_task(self._supervise(actor, kind, reason, details))

    async def replace(self, version: str | None, actor: str) -> None:
        """Stop the current process and start `version` in its place, on the same port; recorded
        as `runtime.replaced` with the releases before and after."""
        before = self.version
        await self.stop()
        self.version = version
        self.start(actor, kind="runtime.replaced", details={"from": before, "to": version})

    def adopt(self, identity: ProcessIdentity, writer: LogWriter | None, *, running: bool,
              started_at: datetime | None) -> None:
        """Supervise the process a supervisor that is gone started (its identity checked by the
        caller), as though this one had started it: watched through its pidfd, restarted by the
        policy once it exits. One that has exited meanwhile goes through that at once."""
        self.identity = identity
        self._pid = self.last_pid = identity.pid
        self._popen = None
        self._watch = ProcessWatch(identity)
        self._writer = writer
        self.started_at = started_at
        self.state = InstanceState.RUNNING if running or not self.port else InstanceState.STARTING
        ran = (self.clock.now() - started_at).total_seconds() if started_at else 0.0
        begun = self.clock.monotonic() - max(0.0, ran)
        self._stopping = False
        self._task = asyncio.create_task(
            self._supervise(SYSTEM_ACTOR, "runtime.restarted", None, running_since=begun))

    async def stop(self) -> str | None:
        """Stop supervising and end the process; returns the signal that ended it, if any ran."""
        self._stopping = True
        self._wake.set()
        how = await self._terminate()
        if self._task is not None:
            await self._task
        self.state = InstanceState.STOPPED
        self.rss_bytes = self.cpu_percent = None
        self.on_change()
        return how

    async def wait_started(self, timeout: float) -> None:
        """Return once it is no longer starting (running, or it exited), or after `timeout`."""
        deadline = self.clock.monotonic() + timeout
        while self.state == InstanceState.STARTING and self.clock.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def close(self) -> None:
        for watch in (self._watch, self._writer):
            if watch is not None:
                watch.close()

    # --- supervision --------------------------------------------------------------------

    async def _supervise(self, actor: str, kind: str, reason: str | None,
                         details: Mapping[str, Any] | None = None, *,
                         running_since: float | None = None) -> None:
        """Run, wait for the end, clean up, decide; again until told to stop or the policy says
        no. `running_since` (monotonic) marks an adopted process: already running."""
        while True:
            if running_since is not None:
                begun, error, running_since = running_since, None, None
            else:
                if self._stopping:  # stop() came before the task began
                    return
                begun = self.clock.monotonic()
                previous_pid = self.last_pid
                error = self._spawn()
                if error is None:
                    self._record_start(kind, actor, reason, previous_pid, details)
            if error is None:
                returncode = await self._run_to_exit()
                self.last_exit = describe_exit(returncode) if returncode is not None else UNKNOWN_EXIT
                failed = returncode != 0
            else:
                failed = True
                self.last_exit = f"cannot start: {error}"
            delay = None if self._stopping else self._after_exit(begun, failed)
            self._pid = None
            await self._clean_up()  # before any restart: the session's leftovers gone, the log complete
            if self._stopping or delay is None:
                return
            if await self._sleep_unless_stopped(delay):
                return
            self.restarts += 1
            kind, actor, reason, details = "runtime.restarted", SYSTEM_ACTOR, f"after {self.last_exit}", None

    def _after_exit(self, begun: float, failed: bool) -> float | None:
        """Record the exit and decide; the delay before restarting, or None to settle."""
        now = self.clock.monotonic()
        self.history.append(Run(begun, now, failed))
        del self.history[:-_HISTORY_KEPT]
        decision = decide(self.spec.policy, self.history, now)
        log.info("%s.%d (pid %s) exited: %s; %s", self.spec.name, self.index, self.last_pid, self.last_exit,
                 decision.reason)
        details: dict[str, Any] = {"instance": self.index, "pid": self.last_pid, "exit": self.last_exit,
                                   "ran_seconds": round(now - begun, 3), "then": decision.reason}
        if self.version is not None:
            details["version"] = self.version
        self.recorder.record("runtime.exited", service=self.spec.name, outcome="failure" if failed else "ok",
                             actor=SYSTEM_ACTOR, details=details)
        if decision.restart:
            self.state = InstanceState.BACKOFF
            self.on_change()
            return decision.delay
        if decision.gave_up:
            self.recorder.record("runtime.failed", service=self.spec.name, outcome="failure",
                                 actor=SYSTEM_ACTOR,
                                 details={"instance": self.index, "reason": decision.reason})
        self.state = InstanceState.FAILED if decision.state == "failed" else InstanceState.STOPPED
        self.on_change()
        return None

    def _record_start(self, kind: str, actor: str, reason: str | None, previous_pid: int | None,
                      extra: Mapping[str, Any] | None) -> None:
        details: dict[str, Any] = {"instance": self.index, "pid": self.pid, "port": self.port}
        if self.version is not None:
            details["version"] = self.version
        if kind in ("runtime.restarted", "runtime.replaced"):
            details.update(previous_pid=previous_pid, restarts=self.restarts)
        if reason:
            details["reason"] = reason
        details.update(extra or {})
        self.recorder.record(kind, service=self.spec.name, outcome="ok", actor=actor, details=details)

    async def _sleep_unless_stopped(self, delay: float) -> bool:
        """Wait `delay` seconds; True when a stop came meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        return self._stopping

    def _spawn(self) -> str | None:
        """Start the log writer, then the program writing into it; None when it runs, else why
        it could not be started."""
        try:
            env = self._environment()
        except SecretError as exc:
            return str(exc)
        argv = [self._fill(arg) for arg in self.spec.argv]
        try:
            self._writer, stdout, stderr = LogWriter.start(
                self._log_path, max_bytes=self.spec.log_max_bytes, backups=self.spec.log_backups,
                daily=self.spec.log_daily)
        except OSError as exc:
            return f"cannot start its log writer: {exc.strerror or exc}"
        try:
            popen = subprocess.Popen(  # noqa: S603 - the inventory's argument list, no shell
                argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=self.spec.cwd, env=env,
                start_new_session=True,
            )
        except OSError as exc:
            return f"{exc.strerror or exc}: {argv[0]} (cwd {self.spec.cwd})"
        finally:
            os.close(stdout)  # the program holds them now; the writer ends when it is gone
            os.close(stderr)
        self._popen = popen
        self._pid = self.last_pid = popen.pid
        self.identity = identify(popen.pid) or ProcessIdentity(popen.pid, 0.0)
        self._watch = ProcessWatch(self.identity)
        self.started_at = self.clock.now()
        self._sampled.clear()
        self.sample()  # memory at once; CPU from the next sample on
        self.state = InstanceState.STARTING if self.port else InstanceState.RUNNING
        self.on_change()
        return None

    async def _run_to_exit(self) -> int | None:
        """Wait for the main process to end, whatever it leaves running; marks it running once its
        port answers meanwhile. Its exit status, or None when it is not our child (adopted)."""
        watch = self._watch
        assert watch is not None
        starting = self.state == InstanceState.STARTING
        ready = asyncio.create_task(self._watch_ready(watch)) if starting else None
        await watch.ended.wait()
        if ready is not None:
            ready.cancel()
        if self._popen is None:
            return None
        return self._popen.wait()  # it has ended: this only reaps it

    async def _clean_up(self) -> None:
        """After the main process ended (or never started): end what it left of its session
        (workers it forked, a shell's children), and let the log writer copy the last lines and
        end. (A session id still in use is never given to a new process, so the reaped leader's
        pid still names the session here.)"""
        self.rss_bytes = self.cpu_percent = None
        if self._watch is not None and self.identity is not None:
            await asyncio.to_thread(signal_session, self.identity, signal.SIGKILL)
            self._watch.close()
        if self._writer is not None:
            await self._writer.finish(_DRAIN_SECONDS)
        self._popen = self._watch = self._writer = None

    async def _terminate(self) -> str | None:
        """End the current process: SIGTERM to its group, SIGKILL after stop_timeout."""
        watch = self._watch
        if watch is None or not watch.running():
            return None
        how = "SIGTERM"
        _kill_group(watch.pid, signal.SIGTERM)
        if not await watch.wait(self.spec.stop_timeout):
            how = "SIGKILL"
            if watch.running():
                _kill_group(watch.pid, signal.SIGKILL)
            await watch.wait()
        if self.identity is not None:
            await asyncio.to_thread(signal_session, self.identity, signal.SIGKILL)
        return how

    async def _watch_ready(self, watch: ProcessWatch) -> None:
        host = "127.0.0.1" if self.spec.host in ("0.0.0.0", "::", "") else self.spec.host  # noqa: S104
        while not watch.ended.is_set():
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, self.port), 1.0)
                writer.close()
                if not watch.ended.is_set() and self.state == InstanceState.STARTING:
                    self.state = InstanceState.RUNNING
                    self.on_change()
                return
            except (OSError, TimeoutError):
                await asyncio.sleep(0.1)

    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in self.environ.items() if key not in HIDDEN_VARIABLES}
        env.update({key: self._fill(value) for key, value in self.spec.env.items()})
        for key, reference in self.spec.secret_env.items():
            env[key] = SecretRef(reference).resolve(dict(self.environ))
        return env

    def _fill(self, text: str) -> str:
        return substitute(text, port=self.port, host=self.spec.host, instance=self.index,
                          service=self.spec.service, version=self.version)

    # --- resources ----------------------------------------------------------------------

    def sample(self) -> None:
        """Measure RSS and CPU of the process and its children; CPU needs two samples."""
        pid = self.pid
        if pid is None:
            self.rss_bytes = self.cpu_percent = None
            return
        try:
            leader = self._sampled.get(pid) or psutil.Process(pid)
            members = [leader, *leader.children(recursive=True)]
        except psutil.Error:
            return
        rss, cpu, measured = 0, 0.0, pid in self._sampled
        seen: dict[int, psutil.Process] = {}
        for process in members:
            known = self._sampled.get(process.pid, process)
            try:
                rss += known.memory_info().rss
                share = known.cpu_percent(None)
            except psutil.Error:
                continue
            if process.pid in self._sampled:
                cpu += share
            seen[process.pid] = known
        self._sampled = seen
        self.rss_bytes = rss
        self.cpu_percent = round(cpu, 1) if measured else None


def _kill_group(pgid: int, signum: int) -> None:
    # called only while the leader runs (an unreaped child, or an adopted process its pidfd shows
    # alive), so its pid, the group id, cannot have been given to another process
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
