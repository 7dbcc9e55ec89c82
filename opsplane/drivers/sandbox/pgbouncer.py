"""A private PgBouncer on loopback: its own ini file, user list and log, in front of the
databases it is given, stopped by SIGTERM.

PgBouncer refuses to run as root, so when we are root it runs as the `postgres` system user
(the account the PostgreSQL sandboxes use); its files are then that user's, so a RELOAD after
`drivers.pgbouncer.repoint` rewrote the ini can still read it."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from opsplane.drivers.pgbouncer import PgBouncer, PgBouncerError, find_pgbouncer
from opsplane.drivers.sandbox import Sandbox, SandboxError, end_process, reachable, service_account
from opsplane.drivers.sandbox.ports import free_port

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Backend:
    """Where one of PgBouncer's databases really is."""

    host: str
    port: int
    dbname: str = "postgres"

    def connstring(self) -> str:
        return f"host={self.host} port={self.port} dbname={self.dbname}"


class TemporaryPgBouncer(Sandbox):
    """A PgBouncer of our own on 127.0.0.1 on a free port.

    `databases` maps the names clients connect to onto backends. `users` maps each login to
    its password (None for none); every login, and `admin_user`, is written into the auth
    file, which PgBouncer needs even with `auth_type` trust. With md5, clients must give the
    password and PgBouncer logs in to PostgreSQL with it too. `settings` are further lines of
    the `[pgbouncer]` section (e.g. `query_wait_timeout`)."""

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        databases: Mapping[str, Backend],
        *,
        users: Mapping[str, str | None] | None = None,
        admin_user: str = "pgbouncer",
        auth_type: Literal["trust", "md5"] = "trust",
        pool_mode: Literal["transaction", "session"] = "transaction",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.host = "127.0.0.1"
        self.port = 0
        self.databases = dict(databases)
        self.users = dict(users if users is not None else {"postgres": None})
        self.admin_user = admin_user
        self.auth_type = auth_type
        self.pool_mode = pool_mode
        self.settings = dict(settings or {})
        self._run_dir: Path | None = None
        self._scratch: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # --- where things are ----------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self._require_run_dir() / "pgbouncer.ini"

    @property
    def log_file(self) -> Path:
        return self._require_run_dir() / "pgbouncer.log"

    def url(self, database: str, user: str = "postgres") -> str:
        """A postgresql:// URL through PgBouncer to `database` (without a password)."""
        return f"postgresql://{user}@{self.host}:{self.port}/{database}"

    def admin(self) -> PgBouncer:
        """A client of this PgBouncer's admin console, as `admin_user`."""
        return PgBouncer(self.host, self.port, user=self.admin_user,
                         password=self.users.get(self.admin_user))

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> TemporaryPgBouncer:
        """Write the ini and the auth file and start PgBouncer; returns self once its admin
        console answers. Starting a running PgBouncer does nothing."""
        if self.running:
            return self
        try:
            binary = find_pgbouncer()
        except PgBouncerError as exc:
            raise SandboxError(str(exc)) from None
        owner = service_account("PgBouncer")
        run_dir = self._prepare_dir(owner)
        self.port = free_port(self.host)
        self._write_files(run_dir, owner)
        log = open(run_dir / "stderr.log", "wb")  # noqa: SIM115 - handed to the process
        try:
            self._process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
                [binary, str(self.config_file)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=run_dir, user=owner.pw_uid if owner else None, group=owner.pw_gid if owner else None,
                extra_groups=[] if owner else None, start_new_session=True,
            )
        finally:
            log.close()
        return self._started(self._wait_ready)

    def stop(self) -> None:
        """Stop PgBouncer at once (SIGTERM, SIGKILL if it lingers) and remove its files. Idempotent."""
        process, self._process = self._process, None
        if process is not None:
            end_process(process, _STOP_TIMEOUT)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __repr__(self) -> str:
        return f"<TemporaryPgBouncer {self.host}:{self.port} pid={self.pid}>"

    # --- internals -------------------------------------------------------------------------

    def _require_run_dir(self) -> Path:
        if self._run_dir is None:
            raise SandboxError("the temporary PgBouncer has not been started")
        return self._run_dir

    def _prepare_dir(self, owner: pwd.struct_passwd | None) -> Path:
        # The run directory is a fresh one of our own, so nothing of an earlier run is reused;
        # it is under base_dir unless PgBouncer's user could not reach that (pytest's private
        # temporary directories).
        self.base_dir.mkdir(parents=True, exist_ok=True)
        parent = self.base_dir if owner is None or reachable(self.base_dir, owner) else None
        run_dir = Path(tempfile.mkdtemp(prefix="opsplane-pgbouncer-", dir=parent))
        if parent is None:
            self._scratch = run_dir
        if owner is not None:
            os.chown(run_dir, owner.pw_uid, owner.pw_gid)
        self._run_dir = run_dir
        return run_dir

    def _write_files(self, run_dir: Path, owner: pwd.struct_passwd | None) -> None:
        logins = {**self.users, self.admin_user: self.users.get(self.admin_user)}
        auth_file = run_dir / "userlist.txt"
        auth_file.write_text("".join(f'"{user}" "{password or ""}"\n' for user, password in logins.items()))
        lines = ["[databases]"]
        lines += [f"{name} = {backend.connstring()}" for name, backend in self.databases.items()]
        settings = {
            "listen_addr": self.host, "listen_port": str(self.port), "unix_socket_dir": "",
            "auth_type": self.auth_type, "auth_file": str(auth_file), "admin_users": self.admin_user,
            "pool_mode": self.pool_mode, "logfile": str(self.log_file),
            "ignore_startup_parameters": "extra_float_digits",
            # A backend that refused a login is tried again after this long (default 15 s).
            "server_login_retry": "1",
            **self.settings,
        }
        lines += ["", "[pgbouncer]", *(f"{key} = {value}" for key, value in settings.items())]
        self.config_file.write_text("\n".join(lines) + "\n")
        for path in (auth_file, self.config_file):
            path.chmod(0o600)
            if owner is not None:
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._process is None or self._process.poll() is not None:
                raise SandboxError(f"pgbouncer exited at start (config {self.config_file})"
                                   f"{self._log_tail()}{self._stderr_tail()}")
            if _accepts(self.host, self.port):
                try:
                    with self.admin() as console:
                        console.show_databases()
                    return
                except PgBouncerError:
                    pass
            if time.monotonic() > deadline:
                raise SandboxError(f"pgbouncer did not answer on port {self.port} within "
                                   f"{_START_TIMEOUT:g} s{self._log_tail()}")
            time.sleep(0.05)

    def _stderr_tail(self) -> str:
        try:
            text = (self._require_run_dir() / "stderr.log").read_text(errors="replace").strip()
        except OSError:
            return ""
        return "\n" + "\n".join(text.splitlines()[-5:]) if text else ""


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
