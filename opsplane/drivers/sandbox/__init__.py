"""Sandboxes: real, temporary servers on loopback for tests and `opsplane demo`.

Each sandbox starts a genuine server binary (PostgreSQL, Redis, Prometheus) on a free
loopback port in a directory it owns, and stops it completely: nothing it started outlives
`stop()`. Import them from their modules: `sandbox.postgres.TemporaryPostgres`,
`sandbox.redis.TemporaryRedis`, `sandbox.prometheus.TemporaryPrometheus`,
`sandbox.s3.TemporaryS3`, `sandbox.ports.free_port`. This package module holds only
what they share, so importing one sandbox never imports the others.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from opsplane.errors import OpsplaneError


class SandboxError(OpsplaneError):
    """A temporary server could not be found, started or stopped."""


__all__ = ["SandboxError", "reachable", "service_account"]


class Sandbox:
    """A server started on entering a `with` block and stopped, completely, on leaving it.

    `_process` is the server's process while it runs (a child here; PostgreSQL's postmaster,
    which pg_ctl starts, overrides `running`)."""

    _process: subprocess.Popen[Any] | Any = None

    @property
    def pid(self) -> int | None:
        """The server's process id while running, else None."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_file(self) -> Path:
        """Where the server writes its log."""
        raise NotImplementedError

    def start(self) -> Self:
        raise NotImplementedError

    def _started(self, ready: Callable[[], None]) -> Self:
        """Self once `ready` returns (the server answers); stopped again, and the error raised,
        when it never does."""
        try:
            ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _log_tail(self, lines: int = 10) -> str:
        """The end of the server's log, to append to an error about it ("" when there is none)."""
        try:
            text = self.log_file.read_text(errors="replace").strip()
        except (OSError, SandboxError):
            return ""
        return "\nserver log:\n" + "\n".join(text.splitlines()[-lines:]) if text else ""


def end_process(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM `process` and wait for it; SIGKILL when it has not exited within `timeout`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


SERVICE_USER = "postgres"


def service_account(server: str) -> pwd.struct_passwd | None:
    """The account `server` (PostgreSQL, PgBouncer: they refuse root) runs as when we are root;
    None when it runs as ourselves. SandboxError when there is no such account."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise SandboxError(
            f"running as root, and {server} refuses to run as root, but there is no "
            f"'{SERVICE_USER}' user to run it as: create one (useradd --system postgres) "
            "or run as an ordinary user"
        ) from None


def reachable(path: Path, owner: pwd.struct_passwd) -> bool:
    """Whether `owner` may traverse every directory down to `path`."""
    for directory in [path.resolve(), *path.resolve().parents]:
        mode = directory.stat()
        if mode.st_uid == owner.pw_uid:
            allowed = mode.st_mode & 0o100
        elif mode.st_gid == owner.pw_gid:
            allowed = mode.st_mode & 0o010
        else:
            allowed = mode.st_mode & 0o001
        if not allowed:
            return False
    return True
