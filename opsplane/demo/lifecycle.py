"""How a running demo learns that it must end, and an output that cannot stop it from ending.

A demo ends the same way whatever asks it to: Ctrl-C (SIGINT), `kill` or `opsplane demo
--stop` (SIGTERM), its terminal closing (SIGHUP), or nobody reading its output any more (a
closed pipe, a hung-up terminal). Each of these only sets `StopRequest`; the demo then stops
everything it started, in order, and signals that arrive meanwhile change nothing.

`GuardedOutput` stands between the demo's console and its standard output: once a write
fails, later writes go nowhere, and the failure becomes a stop request instead of an
exception in whatever was printing (the "stopping" message included).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import select
import signal
from typing import TextIO

STOP_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)
_WATCH_EVERY = 0.5


class StopRequest:
    """Set once, by the first reason to stop; safe to set from any thread or a signal."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def install(self) -> None:
        """Take SIGHUP, SIGINT and SIGTERM for this request (call inside the running loop)."""
        self._loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            self._loop.add_signal_handler(signum, self.set, signal.Signals(signum).name)

    def set(self, reason: str) -> None:
        """Ask the demo to stop; the first reason given is kept."""
        if self.reason is None:
            self.reason = reason
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._event.set)

    async def wait(self) -> str:
        """Return the reason once a stop is requested."""
        await self._event.wait()
        return self.reason or "stop requested"

    async def watch_output(self, fd: int) -> None:
        """Request a stop when `fd` is a pipe whose reader went away or a terminal that hung
        up, even while nothing is being printed."""
        while not self.requested:
            if output_closed(fd):
                self.set("its output was closed")
                return
            await asyncio.sleep(_WATCH_EVERY)


def output_closed(fd: int) -> bool:
    """Whether writing to `fd` can no longer reach anyone (poll reports an error or hang-up;
    a file or /dev/null never does)."""
    poller = select.poll()
    try:
        poller.register(fd, 0)  # no events asked for: only POLLERR, POLLHUP and POLLNVAL come back
    except (OSError, ValueError):
        return True
    return any(events & (select.POLLERR | select.POLLHUP | select.POLLNVAL)
               for _, events in poller.poll(0))


class GuardedOutput(io.TextIOBase):
    """A text stream over `stream` whose writes never raise: the first that fails points the
    underlying descriptor (and standard error, when it is the same pipe or terminal) at
    /dev/null, so nothing later fails on it either, and requests a stop."""

    def __init__(self, stream: TextIO, stop: StopRequest) -> None:
        super().__init__()
        self._stream = stream
        self._stop = stop
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self._stream.write(text)
            except (OSError, ValueError):
                self._lose()
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._lose()

    def isatty(self) -> bool:
        return not self.lost and self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    def _lose(self) -> None:
        self.lost = True
        _silence(self._stream)
        self._stop.set("its output was closed")


def _silence(stream: TextIO) -> None:
    """Point the stream's descriptor, and stderr's when it is the same file, at /dev/null, so
    that neither a later print nor the interpreter's final flush fails on it."""
    try:
        fd = stream.fileno()
        same = os.path.sameopenfile(fd, 2)
    except (OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
        if same and fd != 2:
            os.dup2(null, 2)
    finally:
        os.close(null)
    with contextlib.suppress(OSError, ValueError):
        stream.flush()  # what was buffered now goes to /dev/null
