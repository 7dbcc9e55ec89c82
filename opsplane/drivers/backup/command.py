"""Running an engine's program: an argument list, never a shell; as the data's owner when
needed; every line of its output offered to a reader as it comes; a failure told as a
BackupEngineError with the end of what it printed."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from opsplane.drivers.backup.base import BackupEngineError

_TAIL_LINES = 8


@dataclass(frozen=True)
class Finished:
    """A program that ran to its end: exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run(
    argv: Sequence[str],
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: str | None = None,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
    stdin: int | None = subprocess.DEVNULL,
    check: bool = True,
) -> Finished:
    """Run `argv` to its end and return what it printed.

    `env` is added to a minimal environment (PATH, LANG, HOME), so nothing of ours, such as
    another engine's keys, leaks into it. `user` runs it as that account (we must be root).
    `on_line` gets each line of standard output as it is written. With `check`, an exit
    code other than 0 raises BackupEngineError naming `what`."""
    command = list(argv)
    if user is not None and _current_user() != user:
        command = as_user(user, command)
    base = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL", "TZ") if key in os.environ}
    if user is not None:
        base["HOME"] = _home_of(user)
    elif "HOME" in os.environ:
        base["HOME"] = os.environ["HOME"]
    try:
        process = subprocess.Popen(  # noqa: S603 - an argument list, no shell
            command, env={**base, **(env or {})}, cwd=cwd, stdin=stdin,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
        )
    except FileNotFoundError:
        raise BackupEngineError(f"{what}: {argv[0]} is not installed") from None
    err_lines: deque[str] = deque(maxlen=200)
    reader = threading.Thread(target=_drain, args=(process.stderr, err_lines), daemon=True)
    reader.start()
    out: list[str] = []
    assert process.stdout is not None
    try:
        for line in process.stdout:
            out.append(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))
        returncode = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise BackupEngineError(f"{what}: gave no answer within {timeout:g} s and was stopped") from None
    except BaseException:
        process.kill()
        process.wait()
        raise
    reader.join(timeout=5)
    done = Finished(returncode, "".join(out), "".join(err_lines))
    if check and returncode != 0:
        raise BackupEngineError(f"{what} failed (exit {returncode}): {tail(done)}")
    return done


def tail(done: Finished, lines: int = _TAIL_LINES) -> str:
    """The last lines a program printed, error output first: what a person needs to see."""
    text = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return " | ".join(line.strip() for line in text[-lines:]) or "it printed nothing"


def as_user(user: str, argv: list[str]) -> list[str]:
    """`argv` run as `user` (through runuser or setpriv, from util-linux)."""
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]
    raise BackupEngineError(f"running a command as {user} needs runuser or setpriv: install util-linux")


def _current_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _home_of(user: str) -> str:
    try:
        return pwd.getpwnam(user).pw_dir
    except KeyError:
        raise BackupEngineError(f"there is no user {user} to run the backup engine as") from None


def _drain(stream: object, into: deque[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        into.append(line)
