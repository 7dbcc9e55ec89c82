"""How the CLI and the supervisor find and talk to each other.

Everything lives in the state directory: the unix socket (`supervisor.sock`), over which each
connection carries one JSON request line and one JSON answer line (except `watch`, whose
connection stays open for notices: `watch.py`); the state file
(`state.json`), rewritten atomically on every change so `ps` and `down` can still read what
runs after the supervisor died; the lock the one supervisor holds (`supervisor.lock`), its
own log (`supervisor.log`), the instances' logs (`logs/`) and the release each service runs
(`releases.json`, written by the commands, never by the supervisor: `releases.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsplane.errors import UsageError

# sun_path holds 108 bytes; longer socket paths are reached through the directory's descriptor
_SUN_PATH_LIMIT = 100


@dataclass(frozen=True)
class StatePaths:
    root: Path

    @property
    def socket(self) -> Path:
        return self.root / "supervisor.sock"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def lock(self) -> Path:
        return self.root / "supervisor.lock"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def releases(self) -> Path:
        return self.root / "releases.json"


class NotAnswering(Exception):
    """Nothing answers on the socket (no supervisor, or one that is stuck)."""


@contextlib.contextmanager
def unix_path(path: Path) -> Iterator[str]:
    """A path to give bind() or connect() for `path`, however long `path` is (Linux)."""
    text = str(path)
    if len(text.encode()) < _SUN_PATH_LIMIT:
        yield text
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def call(paths: StatePaths, request: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Send one request to the supervisor and return its answer.

    Raises NotAnswering when no supervisor listens or it does not answer within `timeout`;
    an answer reporting a failure becomes UsageError, SupervisorStopping or SupervisorRefused."""
    if not paths.socket.exists():
        raise NotAnswering(f"no socket at {paths.socket}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            with unix_path(paths.socket) as address:
                sock.connect(address)
            sock.sendall(json.dumps(request).encode() + b"\n")
            answer = _read_line(sock)
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            raise NotAnswering(str(exc)) from None
        except TimeoutError:
            raise NotAnswering(f"no answer within {timeout:g}s") from None
        except OSError as exc:
            raise NotAnswering(exc.strerror or str(exc)) from None
    if not answer:
        raise NotAnswering("the supervisor closed the connection without answering")
    try:
        reply: dict[str, Any] = json.loads(answer)
    except ValueError:
        raise NotAnswering(f"unreadable answer from the supervisor: {answer[:80]!r}") from None
    if not reply.get("ok"):
        message = str(reply.get("error", "the supervisor refused the request"))
        if reply.get("usage"):
            raise UsageError(message)
        if reply.get("stopping"):
            raise SupervisorStopping(message)
        raise SupervisorRefused(message)
    return reply


class SupervisorRefused(Exception):
    """The supervisor answered that it could not do what was asked."""


class SupervisorStopping(SupervisorRefused):
    """The supervisor is on its way out (a `down` left it nothing to run) and takes no new work:
    the request is for the next supervisor."""


def _read_line(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks).strip()


def read_state(paths: StatePaths) -> dict[str, Any] | None:
    """The state file's content, or None when there is none (or it cannot be read)."""
    try:
        data = json.loads(paths.state.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_state(paths: StatePaths, data: dict[str, Any]) -> None:
    """Replace the state file atomically: a reader sees the old or the new content, never half."""
    temporary = paths.state.with_name(f".{paths.state.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=1))
    os.replace(temporary, paths.state)
