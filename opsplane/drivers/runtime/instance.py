"""One supervised instance of a service: start it, log its output, watch it, restart it.

An `Instance` lives inside the supervisor's event loop. Its task starts the program in a
session of its own, pumps stdout and stderr into the instance's log file, marks it running
once its port answers, and when it exits asks `opsplane.runtime.restarts.decide` whether and
when to start it again. `stop()` ends it: SIGTERM to the process group, SIGKILL after the
service's stop_timeout, and SIGKILL to anything of its session still left.
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
from opsplane.drivers.runtime.logfiles import RotatingLog, log_path
from opsplane.drivers.runtime.processes import ProcessIdentity, describe_exit, identify, signal_session
from opsplane.drivers.runtime.spec import ServiceSpec, substitute
from opsplane.errors import SecretError
from opsplane.runtime.restarts import Run, decide

log = logging.getLogger("opsplane.runtime")

SYSTEM_ACTOR = "system:runtime"
# opsplane's own settings are not the services' business (the store URL may hold a password)
HIDDEN_VARIABLES = frozenset({"OPSPLANE_DATABASE_URL"})
_HISTORY_KEPT = 200
_LINE_LIMIT = 65536


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
        self.environ = environ
        self.recorder = recorder
        self.clock = clock
        self.on_change = on_change
        self.state: str = InstanceState.STOPPED
        self.process: asyncio.subprocess.Process | None = None
        self.identity: ProcessIdentity | None = None
        self.started_at: datetime | None = None
        self.restarts = 0
        self.last_exit: str | None = None
        self.last_pid: int | None = None
        self.history: list[Run] = []
        self.rss_bytes: int | None = None
        self.lost_lines = 0
        self.cpu_percent: float | None = None
        self._sampled: dict[int, psutil.Process] = {}
        self._task: asyncio.Task[None] | None = None
        self._pid: int | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._log = RotatingLog(log_path(log_dir, spec.name, index), max_bytes=spec.log_max_bytes,
                                backups=spec.log_backups)

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
            last_exit=self.last_exit,
        )

    def recorded(self) -> dict[str, Any]:
        """The status plus the create time, as the state file keeps it."""
        data = self.status().as_dict()
        data.pop("uptime")
        data["create_time"] = self.identity.create_time if self.identity and self.pid else None
        return data

    def start(self, actor: str, *, kind: str = "runtime.started", reason: str | None = None) -> None:
        """Begin supervising; a fresh start forgets the crash history. No-op when active."""
        if self.active:
            return
        self._stopping = False
        self._wake.clear()
        self.history.clear()
        self.state = InstanceState.STARTING
        self._task = asyncio.create_task(self._supervise(actor, kind, reason))

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
        self._log.close()

    # --- supervision --------------------------------------------------------------------

    async def _supervise(self, actor: str, kind: str, reason: str | None) -> None:
        while True:
            begun = self.clock.monotonic()
            previous_pid = self.last_pid
            error = await self._spawn()
            pumps: list[asyncio.Task[None]] = []
            if error is None:
                if self._stopping:  # stop() came while the program was being started
                    await self._terminate()
                else:
                    self._record_start(kind, actor, reason, previous_pid)
                returncode, pumps = await self._run_to_exit()
                failed = returncode != 0
                self.last_exit = describe_exit(returncode)
            else:
                failed = True
                self.last_exit = f"cannot start: {error}"
            delay = None if self._stopping else self._after_exit(begun, failed)
            self._pid = None
            await self._clean_up(pumps)
            if self._stopping or delay is None:
                return
            if await self._sleep_unless_stopped(delay):
                return
            self.restarts += 1
            kind, actor, reason = "runtime.restarted", SYSTEM_ACTOR, f"after {self.last_exit}"

    def _after_exit(self, begun: float, failed: bool) -> float | None:
        """Record the exit and decide; the delay before restarting, or None to settle."""
        now = self.clock.monotonic()
        self.history.append(Run(begun, now, failed))
        del self.history[:-_HISTORY_KEPT]
        decision = decide(self.spec.policy, self.history, now)
        log.info("%s.%d (pid %s) exited: %s; %s", self.spec.name, self.index, self.last_pid, self.last_exit,
                 decision.reason)
        self.recorder.record(
            "runtime.exited", service=self.spec.name, outcome="failure" if failed else "ok",
            actor=SYSTEM_ACTOR,
            details={"instance": self.index, "pid": self.last_pid, "exit": self.last_exit,
                     "ran_seconds": round(now - begun, 3), "then": decision.reason},
        )
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

    def _record_start(self, kind: str, actor: str, reason: str | None, previous_pid: int | None) -> None:
        details: dict[str, Any] = {"instance": self.index, "pid": self.pid, "port": self.port}
        if kind == "runtime.restarted":
            details.update(previous_pid=previous_pid, restarts=self.restarts)
        if reason:
            details["reason"] = reason
        self.recorder.record(kind, service=self.spec.name, outcome="ok", actor=actor, details=details)

    async def _sleep_unless_stopped(self, delay: float) -> bool:
        """Wait `delay` seconds; True when a stop came meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        return self._stopping

    async def _spawn(self) -> str | None:
        """Start the program; None when it runs, else why it could not be started."""
        try:
            env = self._environment()
        except SecretError as exc:
            return str(exc)
        argv = [self._fill(arg) for arg in self.spec.argv]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=self.spec.cwd, env=env, start_new_session=True,
            )
        except OSError as exc:
            return f"{exc.strerror or exc}: {argv[0]} (cwd {self.spec.cwd})"
        self.process = process
        self._pid = self.last_pid = process.pid
        self.identity = identify(process.pid) or ProcessIdentity(process.pid, 0.0)
        self.started_at = self.clock.now()
        self._sampled.clear()
        self.sample()  # memory at once; CPU from the next sample on
        self.state = InstanceState.STARTING if self.port else InstanceState.RUNNING
        self.on_change()
        return None

    async def _run_to_exit(self) -> tuple[int, list[asyncio.Task[None]]]:
        """Wait for the process to end; its return code and the tasks still pumping its output."""
        process = self.process
        assert process is not None and process.stdout is not None and process.stderr is not None
        pumps = [asyncio.create_task(self._pump(process.stdout, "stdout")),
                 asyncio.create_task(self._pump(process.stderr, "stderr"))]
        ready = asyncio.create_task(self._watch_ready(process)) if self.port else None
        returncode = await process.wait()
        if ready is not None:
            ready.cancel()
        return returncode, pumps

    async def _clean_up(self, pumps: list[asyncio.Task[None]]) -> None:
        """After an exit: end what the program left of its session (workers, a shell's
        children), then let the output pumps finish."""
        self.rss_bytes = self.cpu_percent = None
        if self.identity is not None:
            await asyncio.to_thread(signal_session, self.identity, signal.SIGKILL)
        if pumps:
            _, pending = await asyncio.wait(pumps, timeout=2.0)
            for task in pending:
                task.cancel()

    async def _terminate(self) -> str | None:
        """End the current process: SIGTERM to its group, SIGKILL after stop_timeout."""
        process = self.process
        if process is None or process.returncode is not None:
            return None
        how = "SIGTERM"
        _kill_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), self.spec.stop_timeout)
        except TimeoutError:
            how = "SIGKILL"
            _kill_group(process.pid, signal.SIGKILL)
            await process.wait()
        if self.identity is not None:
            await asyncio.to_thread(signal_session, self.identity, signal.SIGKILL)
        return how

    async def _watch_ready(self, process: asyncio.subprocess.Process) -> None:
        host = "127.0.0.1" if self.spec.host in ("0.0.0.0", "::", "") else self.spec.host  # noqa: S104
        while process.returncode is None:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, self.port), 1.0)
                writer.close()
                if process.returncode is None and self.state == InstanceState.STARTING:
                    self.state = InstanceState.RUNNING
                    self.on_change()
                return
            except (OSError, TimeoutError):
                await asyncio.sleep(0.1)

    async def _pump(self, reader: asyncio.StreamReader, stream: str) -> None:
        """Copy one stream into the log until it ends. The pipe is always drained, even when the
        log cannot be written (a full disk): a program blocked on a full pipe would hang."""
        partial = b""
        while chunk := await reader.read(65536):
            *lines, partial = (partial + chunk).split(b"\n")
            if len(partial) > _LINE_LIMIT:  # a line without end: keep the log readable
                lines.append(partial)
                partial = b""
            self._write_lines(stream, lines)
        if partial:
            self._write_lines(stream, [partial])

    def _write_lines(self, stream: str, lines: list[bytes]) -> None:
        now = self.clock.now()
        try:
            for line in lines:
                self._log.write(stream, _text(line), now)
        except OSError as exc:
            self.lost_lines += len(lines)
            if self.lost_lines == len(lines):  # say it once, not for every line
                log.error("%s.%d: cannot write its log %s: %s; dropping lines", self.spec.name,
                          self.index, self._log.path, exc.strerror or exc)

    def _environment(self) -> dict[str, str]:
        env = {key: value for key, value in self.environ.items() if key not in HIDDEN_VARIABLES}
        env.update({key: self._fill(value) for key, value in self.spec.env.items()})
        for key, reference in self.spec.secret_env.items():
            env[key] = SecretRef(reference).resolve(dict(self.environ))
        return env

    def _fill(self, text: str) -> str:
        return substitute(text, port=self.port, host=self.spec.host, instance=self.index,
                          service=self.spec.name)

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
    # the leader is our unreaped child here, so its pid (the group id) cannot have been reused
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _text(line: bytes) -> str:
    return line.decode("utf-8", "replace").rstrip("\r")
