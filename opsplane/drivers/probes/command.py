"""Command probe: run a program (never through a shell) and judge it by its exit code.

The program runs in a session of its own so that, when the probe is cancelled (run_probe's
timeout), the whole process group is killed and reaped: a check never leaves orphans behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping

from opsplane.config.models import CommandCheck
from opsplane.drivers.probes.base import ProbeFailed, format_elapsed
from opsplane.health.models import Metric, ProbeResult, State
from opsplane.health.targets import CheckTarget, command_line

_REASON_CHARS = 200


class CommandProbe:
    """Runs `check.argv` with `check.env` over `environ` (default os.environ) in `check.cwd`."""

    def __init__(self, check: CommandCheck, *, environ: Mapping[str, str] | None = None) -> None:
        self.check = check
        self.argv = list(check.argv)
        base = os.environ if environ is None else environ
        self.env = {**base, **check.env}

    @property
    def address(self) -> str:
        return command_line(self.argv)

    @classmethod
    def for_target(
        cls, target: CheckTarget, *, environ: Mapping[str, str] | None = None
    ) -> CommandProbe:
        if not isinstance(target.check, CommandCheck):
            raise TypeError(f"{target.id} is not a command check")
        return cls(target.check, environ=environ)

    async def probe(self) -> ProbeResult:
        """OK on exit 0, WARNING on a warning exit code, else CRITICAL; reason "exit 2: <line>";
        metrics exit_code and runtime_ms."""
        started = time.perf_counter()
        process = await self._spawn()
        try:
            stdout, stderr = await process.communicate()
        except BaseException:
            await _kill_group(process)
            raise
        elapsed = time.perf_counter() - started
        return self.judge(process.returncode, stdout, stderr, elapsed)

    def judge(self, code: int | None, stdout: bytes, stderr: bytes, elapsed: float) -> ProbeResult:
        """The result for a program that ended with `code` and printed `stdout`/`stderr`."""
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
            line = first_line(stdout) or first_line(stderr)
        else:
            state = State.WARNING if code in self.check.warning_exit_codes else State.CRITICAL
            line = first_line(stderr) or first_line(stdout)
        head = f"exit {code}" if line or code != 0 else f"exit 0 in {format_elapsed(elapsed)}"
        return ProbeResult(state, f"{head}: {line}" if line else head, metrics=metrics)

    async def _spawn(self) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                cwd=self.check.cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            if self.check.cwd is not None and exc.filename == self.check.cwd:
                raise ProbeFailed(f"working directory not found: {self.check.cwd}") from None
            raise ProbeFailed("command not found") from None  # run_probe names the command
        except PermissionError:
            raise ProbeFailed("command not executable") from None


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the program's whole session and wait for it, even while being cancelled."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # pgid == pid: start_new_session
    # Reaping must finish even if we are cancelled again, or a zombie is left behind.
    reaper = asyncio.ensure_future(process.wait())
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(reaper)


def first_line(output: bytes) -> str:
    """The first non-blank line of `output`, decoded and cut to 200 characters."""
    for raw in output.splitlines():
        line = raw.decode("utf-8", errors="replace").strip()
        if line:
            return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 1] + "…"
    return ""
