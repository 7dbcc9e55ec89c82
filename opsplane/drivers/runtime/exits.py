"""Seeing a process end the moment it does, child or not.

A pidfd (`os.pidfd_open`, Linux 5.3 and later) becomes readable when its process exits, so the
event loop hears of the exit itself: not of its pipes closing (a worker the program forked may
hold them for ever), and also for a process the supervisor did not start (one it adopted from a
supervisor that died), which `waitpid` cannot wait for. Where pidfds are not available the
process is looked at every 0.1 s instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal

from opsplane.drivers.runtime.processes import ProcessIdentity, is_alive

_POLL_SECONDS = 0.1


class ProcessWatch:
    """The end of one process, as an asyncio event. Open it while the process is known to be
    the one meant: a child not yet reaped, or an adopted process whose identity was checked (the
    watch checks it again once its pidfd is open, since the pidfd then pins that process)."""

    def __init__(self, identity: ProcessIdentity) -> None:
        self.identity = identity
        self.ended = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._fd: int | None = None
        self._poller: asyncio.Task[None] | None = None
        try:
            self._fd = os.pidfd_open(identity.pid)
        except ProcessLookupError:
            self.ended.set()
            return
        except OSError:  # no pidfds here (an old kernel, a sandbox that forbids them)
            self._poller = asyncio.create_task(self._poll())
            return
        if not is_alive(identity):  # gone, or the pid already belongs to another process
            self.ended.set()
            return
        self._loop.add_reader(self._fd, self._readable)

    @property
    def pid(self) -> int:
        return self.identity.pid

    def running(self) -> bool:
        """Whether the process has not exited yet, looked at now rather than when the event loop
        gets to it: while it runs, its pid (and the group and session named after it) cannot be
        given to another process."""
        if self.ended.is_set():
            return False
        if self._fd is None:
            return is_alive(self.identity)
        readable, _, _ = select.select([self._fd], [], [], 0)
        return not readable

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for the end, at most `timeout` seconds; whether it ended."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ended.wait(), timeout)
        return self.ended.is_set()

    def signal(self, signum: int) -> bool:
        """Send `signum` to the process itself; False when it has exited."""
        if not self.running():
            return False
        try:
            if self._fd is not None:
                signal.pidfd_send_signal(self._fd, signum)
            else:
                os.kill(self.pid, signum)
        except ProcessLookupError:
            return False
        return True

    def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if self._fd is not None:
            with contextlib.suppress(ValueError, RuntimeError):  # a loop already closed
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _readable(self) -> None:
        self.ended.set()
        if self._fd is not None:
            self._loop.remove_reader(self._fd)

    async def _poll(self) -> None:
        while is_alive(self.identity):
            await asyncio.sleep(_POLL_SECONDS)
        self.ended.set()
