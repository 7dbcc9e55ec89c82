"""The parent of a command check's program: it runs the program and, when the run ends, kills
everything the program left behind (opsplane/drivers/probes/command.py says why).

Run as `python -I -S command_reaper.py STATUS_FD PROBER_PID LC_CTYPE PROGRAM [ARG...]`, in a
session of its own, with the program's environment, working directory and output. It uses
the standard library only and imports nothing of opsplane, so it starts in milliseconds.

1. It makes itself a child subreaper (Linux's prctl PR_SET_CHILD_SUBREAPER): a process the
   program leaves behind, however it detaches (`&`, a double fork, `setsid`), is re-parented
   to this helper instead of to init, so it stays within reach.
2. It asks for SIGTERM if the prober dies (PR_SET_PDEATHSIG), and starts the program in a
   process group of its own.
3. It waits for the program to exit, or for SIGTERM (the probe's timeout).
4. It kills the program's process group, then every child it has (the program, and whatever
   was re-parented to it) with the process group of each, reaping them, until it has none.
5. On STATUS_FD it has written `started PID` once the program started, and it writes one last
   line: `exit CODE SECONDS`, `signal NUMBER SECONDS`, `stopped`,
   `missing` (no such program), `denied` (not executable) or `error TEXT`, and exits.

Python sets LC_CTYPE in its own environment when the locale is C (PEP 538); LC_CTYPE "-"
means the program's environment had none, so the helper removes it again.
"""

from __future__ import annotations

import os
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class _Stop(Exception):
    """SIGTERM: the prober gave up on the run."""


def _stop(signum: int, frame: object) -> None:
    raise _Stop


def _prctl(option: int, value: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):  # not Linux: only the process group is killed
        return False


def _children() -> list[int]:
    """This process's children, live or not yet reaped."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as listing:
            return [int(pid) for pid in listing.read().split()]
    except OSError:
        pass
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as stat:
                # after the command's closing parenthesis: state, then the parent's pid
                if int(stat.read().rpartition(")")[2].split()[1]) == me:
                    found.append(int(name))
        except (OSError, ValueError, IndexError):
            pass  # not a process, or one that just ended
    return found


def _kill_everything_left() -> None:
    """SIGKILL every child and its process group, reap, and again, until there is no child.

    A group is killed only while one of its members is an unreaped child of ours, so its id
    cannot have been reused; the helper's own group is never killed.
    """
    own_group = os.getpgrp()
    while True:
        for pid in _children():
            try:
                group = os.getpgid(pid)
                if group != own_group:
                    os.killpg(group, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # already gone (a zombie has its group still, and is reaped below)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _outcome(pid: int, started: float) -> str:
    # Kill the program's group while the program is still an unreaped zombie (its group id
    # cannot be reused yet), then reap it.
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    seconds = time.monotonic() - started
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass  # the group is empty but for the program
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)} {seconds:.6f}"
    return f"exit {os.WEXITSTATUS(status)} {seconds:.6f}"


def main(argv: list[str]) -> int:
    status_fd, prober, lc_ctype, program = int(argv[1]), int(argv[2]), argv[3], argv[4:]
    os.set_inheritable(status_fd, False)
    signal.signal(signal.SIGTERM, _stop)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if lc_ctype == "-":
        os.environ.pop("LC_CTYPE", None)
    outcome = "stopped"
    try:
        if os.getppid() != prober:  # the prober died before PDEATHSIG was set
            raise _Stop
        started = time.monotonic()
        try:
            pid = os.posix_spawnp(program[0], program, os.environ, setpgroup=0)
        except FileNotFoundError:
            outcome = "missing"
        except PermissionError:
            outcome = "denied"
        except OSError as exc:
            outcome = f"error {exc.strerror or exc}"
        else:
            os.write(status_fd, f"started {pid}\n".encode())
            outcome = _outcome(pid, started)
    except _Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # nothing interrupts the clean-up
    _kill_everything_left()
    os.write(status_fd, outcome.encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
