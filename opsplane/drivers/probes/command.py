"""Command probe: run a program (never through a shell) and judge it by its exit code.

A run always ends, and nothing it started outlives it:

- The program's parent is a small helper, `command_reaper.py` (standard library only, run as
  `python -I -S`, in a session of its own). The helper makes itself a child subreaper
  (prctl PR_SET_CHILD_SUBREAPER), so whatever the program leaves behind, however it detached
  (`cmd &`, a double fork, `setsid cmd &`), is re-parented to the helper rather than to init.
  When the program exits, or when the probe gives up (SIGTERM to the helper at the timeout),
  the helper kills the program's process group and then every child it has, with the process
  group of each, until none is left; then it writes the outcome on a status pipe and exits.
  A process-group kill alone misses `setsid`, which makes a new session and group; looking
  for descendants in /proc by parent pid misses a process whose parent already exited, since
  it then belongs to init; a cgroup needs privileges the prober may not have. A subreaper
  needs none, and a process cannot leave it by detaching. The helper also asks for SIGTERM
  when the prober dies (PR_SET_PDEATHSIG), so a killed `serve` leaves no checks running.
  Off Linux there is no subreaper: only the program's process group is killed.
- The exit is known from the helper's own exit, never from the pipes closing: a process
  holding the output open cannot hold up the result.
- Both streams are read as they come, concurrently, keeping the first 64 KiB of each and
  discarding the rest while reading on, so a program that prints gigabytes costs the prober
  CPU but no memory, and never stops on a full pipe. Once the helper has exited the streams
  are read to their end for at most DRAIN_WAIT, then closed.
- If the helper has not exited KILL_WAIT after SIGTERM (a process it waits for cannot die),
  its process group and the program's are sent SIGKILL.

The helper costs a second, small process per run: about 20 ms of CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from opsplane.config.models import CommandCheck
from opsplane.drivers.probes.base import ProbeFailed, format_elapsed, redact
from opsplane.health.models import Metric, ProbeResult, State
from opsplane.health.targets import CheckTarget, command_line

_REASON_CHARS = 200
OUTPUT_KEPT = 64 * 1024  # bytes kept of each stream; the rest is read and dropped
KILL_WAIT = 2.0  # seconds for the helper to kill everything after SIGTERM
DRAIN_WAIT = 1.0  # seconds to read the streams to their end once the helper has exited
_HELPER = str(Path(__file__).with_name("command_reaper.py"))


class CommandProbe:
    """Runs `check.argv` with `check.env` and `secret_env` (resolved values) over `environ`
    (default os.environ) in `check.cwd`; the secret values never show in a result."""

    def __init__(
        self,
        check: CommandCheck,
        *,
        environ: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
    ) -> None:
        self.check = check
        self.argv = list(check.argv)
        base = os.environ if environ is None else environ
        self.env = {**base, **check.env, **(secret_env or {})}
        self._secrets = tuple(value for value in (secret_env or {}).values() if value)

    @property
    def address(self) -> str:
        return command_line(self.argv)

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    @classmethod
    def for_target(
        cls,
        target: CheckTarget,
        *,
        environ: Mapping[str, str] | None = None,
        secret_env: Mapping[str, str] | None = None,
    ) -> CommandProbe:
        if not isinstance(target.check, CommandCheck):
            raise TypeError(f"{target.id} is not a command check")
        return cls(target.check, environ=environ, secret_env=secret_env)

    async def probe(self) -> ProbeResult:
        """OK on exit 0, WARNING on a warning exit code, else CRITICAL; reason "exit 2: <line>";
        metrics exit_code and runtime_ms."""
        run = await _Run.start(self.argv, self.env, self.check.cwd)
        try:
            await run.exited()
        except BaseException:
            await _despite_cancellation(run.stop())
            raise
        await run.drain()
        code, elapsed = run.outcome()
        return self.judge(code, bytes(run.stdout.kept), bytes(run.stderr.kept), elapsed)

    def judge(self, code: int | None, stdout: bytes, stderr: bytes, elapsed: float) -> ProbeResult:
        """The result for a program that ended with `code` and printed `stdout`/`stderr`; the
        secrets are replaced before the quoted line is cut, so no part of one shows."""
        metrics: dict[str, Metric] = {"exit_code": code, "runtime_ms": round(elapsed * 1000, 3)}
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return ProbeResult(State.CRITICAL, f"killed by {name}", metrics=metrics)
        if code == 0:
            state = State.OK
            # A healthy program's summary is on stdout (the Nagios plugin convention);
            # a failing one's explanation is usually on stderr.
            line = first_line(stdout, self._secrets) or first_line(stderr, self._secrets)
        else:
            state = State.WARNING if code in self.check.warning_exit_codes else State.CRITICAL
            line = first_line(stderr, self._secrets) or first_line(stdout, self._secrets)
        head = f"exit {code}" if line or code != 0 else f"exit 0 in {format_elapsed(elapsed)}"
        return ProbeResult(state, f"{head}: {line}" if line else head, metrics=metrics)


class _Capture(asyncio.Protocol):
    """One stream of the program: the first `limit` bytes kept, the rest read and dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.dropped = 0
        self.transport: asyncio.BaseTransport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        self.dropped += max(0, len(data) - room)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _Run:
    """One run of the helper and its program: the process, its two streams and its status."""

    def __init__(self, helper: asyncio.subprocess.Process, stdout: _Capture, stderr: _Capture,
                 status: _Capture) -> None:
        self.helper = helper
        self.stdout = stdout
        self.stderr = stderr
        self.status = status

    @classmethod
    async def start(cls, argv: list[str], env: Mapping[str, str], cwd: str | None) -> _Run:
        """Start the helper with the program; its streams are read from before it starts."""
        pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, status
        captures: list[_Capture] = []
        try:
            for (read_end, _), limit in zip(pipes, (OUTPUT_KEPT, OUTPUT_KEPT, 4096), strict=True):
                captures.append(await _capture(read_end, limit))
            helper = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", _HELPER, str(pipes[2][1]), str(os.getpid()),
                "=" if "LC_CTYPE" in env else "-", *argv,
                stdin=asyncio.subprocess.DEVNULL, stdout=pipes[0][1], stderr=pipes[1][1],
                pass_fds=(pipes[2][1],), env=dict(env), cwd=cwd, start_new_session=True,
            )
        except BaseException as exc:
            for capture in captures:
                capture.close()
            for read_end, _ in pipes[len(captures) + 1:]:  # never handed to a capture
                os.close(read_end)
            if isinstance(exc, FileNotFoundError) and cwd is not None:
                raise ProbeFailed(f"working directory not found: {cwd}") from None
            if isinstance(exc, NotADirectoryError | PermissionError) and cwd is not None:
                raise ProbeFailed(f"working directory cannot be entered: {cwd}") from None
            raise
        finally:
            for _, write_end in pipes:
                os.close(write_end)
        stdout, stderr, status = captures
        return cls(helper, stdout, stderr, status)

    async def exited(self) -> None:
        await self.helper.wait()

    async def stop(self) -> None:
        """End the run early: the helper kills what the program started; if it cannot within
        KILL_WAIT, its group and the program's are killed from here."""
        with contextlib.suppress(ProcessLookupError):
            self.helper.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.helper.wait(), KILL_WAIT)
        except TimeoutError:
            for group in (self.helper.pid, self._program_pid()):
                if group is not None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(group, signal.SIGKILL)
            await self.helper.wait()
        await self.drain()

    async def drain(self) -> None:
        """Read both streams and the status to their end, for at most DRAIN_WAIT."""
        captures = (self.stdout, self.stderr, self.status)
        await asyncio.wait([c.closed for c in captures], timeout=DRAIN_WAIT)
        for capture in captures:
            capture.close()

    def outcome(self) -> tuple[int | None, float]:
        """The program's exit code (negative: the signal that killed it) and its run time."""
        lines = bytes(self.status.kept).decode(errors="replace").splitlines()
        words = lines[-1].split() if lines else []
        kind = words[0] if words else ""
        if kind == "missing":
            raise ProbeFailed("command not found")  # run_probe names the command
        if kind == "denied":
            raise ProbeFailed("command not executable")
        if kind == "error":
            raise ProbeFailed(f"command cannot be started: {' '.join(words[1:])}")
        if kind in ("exit", "signal") and len(words) == 3:
            code = int(words[1])
            return (code if kind == "exit" else -code), float(words[2])
        raise ProbeFailed(f"the command's helper ended without saying how the command did "
                          f"(helper exit {self.helper.returncode})", State.UNKNOWN)

    def _program_pid(self) -> int | None:
        """The program's pid (and process group), once the helper said it started it."""
        first = bytes(self.status.kept).split(b"\n", 1)[0].split()
        return int(first[1]) if len(first) == 2 and first[0] == b"started" else None


async def _capture(fd: int, limit: int) -> _Capture:
    """Read the pipe `fd` into a new _Capture as data comes; `fd` is closed with it, or now
    if that fails."""
    capture = _Capture(limit)
    try:
        pipe = open(fd, "rb", buffering=0)  # noqa: SIM115 - the transport closes it
    except BaseException:
        os.close(fd)
        raise
    try:
        await asyncio.get_running_loop().connect_read_pipe(lambda: capture, pipe)
    except BaseException:
        pipe.close()
        raise
    return capture


async def _despite_cancellation(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run `cleanup` to its end even if the task awaiting it is cancelled again meanwhile
    (its own waits are bounded): a half-done clean-up would leave processes behind."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()


def first_line(output: bytes, secrets: tuple[str, ...] = ()) -> str:
    """The first non-blank line of `output`, decoded, `secrets` replaced by ***, and cut to
    200 characters."""
    for raw in output.splitlines():
        line = redact(raw.decode("utf-8", errors="replace"), secrets).strip()
        if line:
            return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 1] + "…"
    return ""
