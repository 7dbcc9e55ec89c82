"""Seeing a process end: through its pidfd, also for a process that is not our child, and by
looking when the kernel offers no pidfds; a pid that now names another process counts as ended."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess

import pytest

from opsplane.drivers.runtime.exits import ProcessWatch
from opsplane.drivers.runtime.processes import ProcessIdentity, identify


def orphan(seconds: float) -> ProcessIdentity:
    """A `sleep` whose parent has exited, as an adopted instance is: not our child."""
    shell = subprocess.run(["sh", "-c", f"sleep {seconds} >/dev/null 2>&1 & echo $!"],  # noqa: S603, S607
                           capture_output=True, text=True, check=True)
    pid = int(shell.stdout)
    identity = identify(pid)
    assert identity is not None
    return identity


async def test_the_end_of_a_process_that_is_not_our_child_is_seen() -> None:
    identity = orphan(0.3)
    watch = ProcessWatch(identity)
    try:
        assert watch.running() and not await watch.wait(0.05)

        assert await watch.wait(5.0)
        assert not watch.running() and not watch.signal(0)
    finally:
        watch.close()


async def test_without_pidfds_the_end_is_seen_by_looking(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfds(pid: int, flags: int = 0) -> int:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfds)
    identity = orphan(0.3)
    watch = ProcessWatch(identity)
    try:
        assert watch.running()

        assert await asyncio.wait_for(watch.ended.wait(), 5.0) is True
    finally:
        watch.close()


async def test_a_pid_that_names_another_process_now_counts_as_ended() -> None:
    me = identify(os.getpid())
    assert me is not None
    watch = ProcessWatch(ProcessIdentity(me.pid, me.create_time - 100))  # recorded long before

    assert watch.ended.is_set() and not watch.running() and not watch.signal(0)
    watch.close()
