"""Finding and signalling the processes an instance consists of, safely.

Every instance is started in its own session (so its own process group), whose id is the
pid of the program the supervisor started. A recorded pid is only signalled after its
create time matches the one recorded, so a pid the kernel has given to another program is
never touched. A zombie counts as gone: orphans reparented to a PID 1 that does not reap
them stay zombies, but they no longer run.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

# psutil derives create times from clock ticks since boot; two reads of one process agree to
# far better than this, while a reused pid starts at least one tick later
_SAME_START = 0.05


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as recorded: its pid and when it was created (seconds since the epoch)."""

    pid: int
    create_time: float


def identify(pid: int) -> ProcessIdentity | None:
    """The identity of the live process `pid`, or None when there is none."""
    try:
        return ProcessIdentity(pid, psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_gone(pid: int) -> bool:
    """Whether `pid` no longer runs: it does not exist or is a zombie."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def is_alive(identity: ProcessIdentity) -> bool:
    """Whether the recorded process still runs (same pid, same create time, not a zombie)."""
    try:
        process = psutil.Process(identity.pid)
        if abs(process.create_time() - identity.create_time) > _SAME_START:
            return False
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _pid_reused(identity: ProcessIdentity) -> bool:
    try:
        return abs(psutil.Process(identity.pid).create_time() - identity.create_time) > _SAME_START
    except psutil.NoSuchProcess:
        return False


def session_members(leader: ProcessIdentity) -> list[psutil.Process]:
    """Live processes of the session `leader` started (the leader itself when it still runs).

    When the pid was reused by another program, the original session must be empty (the
    kernel does not hand out a pid still in use as a session id), so nothing is returned.
    """
    if _pid_reused(leader):
        return []
    members = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) != leader.pid:
                continue
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            continue
    return members


def signal_session(leader: ProcessIdentity, signum: int) -> int:
    """Send `signum` to every live process of the leader's session; returns how many got it."""
    sent = 0
    for process in session_members(leader):
        try:
            process.send_signal(signum)  # psutil checks the pid still names the same process
            sent += 1
        except psutil.NoSuchProcess:
            continue
    return sent


def stop_session(
    leader: ProcessIdentity,
    timeout: float,
    *,
    poll: float = 0.05,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """SIGTERM the session, SIGKILL what is left after `timeout` seconds. Returns None when
    nothing was running, "SIGTERM" or "SIGKILL" for the signal that ended it."""
    if signal_session(leader, signal.SIGTERM) == 0:
        return None
    deadline = monotonic() + timeout
    while monotonic() < deadline:
        if not session_members(leader):
            return "SIGTERM"
        sleep(poll)
    signal_session(leader, signal.SIGKILL)
    deadline = monotonic() + 5.0
    while session_members(leader) and monotonic() < deadline:
        sleep(poll)
    return "SIGKILL"


def describe_exit(returncode: int) -> str:
    """"exit 1", "signal 9" (a negative return code is the signal that ended the process)."""
    return f"signal {-returncode}" if returncode < 0 else f"exit {returncode}"
