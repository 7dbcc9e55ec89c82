"""Where an instance's output goes: into two pipes whose only reader is the run's log writer
(`logwriter.py`), a process of its own that outlives the supervisor if need be.

The supervisor makes the pipes, starts the writer with their read ends and the program with
their write ends, and closes its own copies: nothing the program writes passes through the
supervisor, so a supervisor that dies takes nobody's output with it, and one that adopts the
instance later finds its writer still at work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsplane.drivers.runtime import logwriter
from opsplane.drivers.runtime.exits import ProcessWatch
from opsplane.drivers.runtime.processes import ProcessIdentity, identify, is_alive

log = logging.getLogger("opsplane.runtime")

_WRITER = Path(logwriter.__file__)
_END_WAIT = 2.0


class LogWriter:
    """The log writer of one run of an instance; `start` for a new run, `adopt` for the writer
    of a run a supervisor that is gone started."""

    def __init__(self, path: Path, identity: ProcessIdentity, popen: subprocess.Popen[bytes] | None) -> None:
        self.path = path
        self.identity = identity
        self._popen = popen  # None when adopted: another supervisor's child
        self.watch = ProcessWatch(identity)

    @classmethod
    def start(cls, path: Path, *, max_bytes: int, backups: int,
              daily: bool = False) -> tuple[LogWriter, int, int]:
        """Start a writer for `path` (rotating at `max_bytes`, and at each new day when `daily`);
        it and the write ends of the program's stdout and stderr pipes, which the caller gives the
        program and then closes."""
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            popen = subprocess.Popen(  # noqa: S603 - our own script, argument list
                [sys.executable, "-I", "-S", str(_WRITER), str(path), str(max_bytes), str(backups),
                 str(out_read), str(err_read), *(["daily"] if daily else [])],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(out_read, err_read),
                start_new_session=True, env={},
            )
        except OSError:
            for fd in (out_write, err_write):
                os.close(fd)
            raise
        finally:
            for fd in (out_read, err_read):
                os.close(fd)
        return cls(path, identify(popen.pid) or ProcessIdentity(popen.pid, 0.0), popen), out_write, err_write

    @classmethod
    def adopt(cls, path: Path, recorded: Mapping[str, Any] | None) -> LogWriter | None:
        """The writer a state file recorded, when it still runs."""
        if not recorded or not recorded.get("pid"):
            return None
        identity = ProcessIdentity(int(recorded["pid"]), float(recorded.get("create_time") or 0))
        return cls(path, identity, None) if is_alive(identity) else None

    def recorded(self) -> dict[str, Any]:
        return {"pid": self.identity.pid, "create_time": self.identity.create_time}

    async def finish(self, timeout: float) -> None:
        """Wait for the writer to copy the last lines and end, which it does once nothing holds
        the pipes any more. One still running after `timeout` (a process that left the instance's
        session holds them) is ended, so that a log file has one writer at a time."""
        if not await self.watch.wait(timeout):
            log.warning("the log writer %d of %s still reads after %gs: a process outside the "
                        "instance's session holds its output; ending the writer", self.identity.pid,
                        self.path.name, timeout)
            self.watch.signal(signal.SIGTERM)
            if not await self.watch.wait(_END_WAIT):
                self.watch.signal(signal.SIGKILL)
                await self.watch.wait(_END_WAIT)
        if self._popen is not None:
            with contextlib.suppress(OSError):
                self._popen.poll()  # reap it
        self.watch.close()

    def close(self) -> None:
        self.watch.close()
