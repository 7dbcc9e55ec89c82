"""A private PostgreSQL cluster on loopback: initdb, pg_ctl, and nothing left behind.

`TemporaryPostgres` never touches the machine's own PostgreSQL: it runs the server binaries
on a free port, with its own data directory and its own Unix socket directory. initdb
refuses to run as root, so when we are root the cluster runs as the `postgres` system user.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg

from opsplane.drivers.sandbox import Sandbox, SandboxError, reachable, service_account
from opsplane.drivers.sandbox.ports import free_port

_START_TIMEOUT = 60
_STOP_TIMEOUT = 30
# Unix socket paths are limited to ~107 bytes; deeper directories get a short one in /tmp.
_MAX_SOCKET_DIR = 80
# A throwaway cluster need not survive a power cut, so skip the disk flushes. Commits stay
# synchronous: tests rely on a committed change being in the WAL the replicas receive.
_FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off"}


def find_postgres_bindir() -> Path:
    """The directory holding initdb and pg_ctl; SandboxError naming what is missing otherwise."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()))
    # Debian and Ubuntu keep server binaries off PATH, one directory per major version.
    versioned = Path("/usr/lib/postgresql").glob("*/bin")
    candidates.extend(sorted(versioned, key=_major_version, reverse=True))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise SandboxError(
        "PostgreSQL server binaries not found (initdb and pg_ctl): install the PostgreSQL "
        "server package, e.g. `apt-get install postgresql`, or put its bin directory on PATH"
    )


def _major_version(bindir: Path) -> int:
    name = bindir.parent.name
    return int(name) if name.isdigit() else 0


class TemporaryPostgres(Sandbox):
    """A PostgreSQL cluster of our own, listening on 127.0.0.1 on a free port.

    `base_dir` belongs to this cluster (data directory, socket directory, server log).
    With `password`, TCP connections need it (scram-sha-256); local socket connections,
    used by `execute`, are always trusted. `settings` are extra server settings (`-c`).
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        *,
        user: str = "postgres",
        password: str | None = None,
        settings: dict[str, str] | None = None,
        bindir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.host = "127.0.0.1"
        self.port = 0
        self.user = user
        self.password = password
        self.settings = {**_FAST_SETTINGS, **(settings or {})}
        self.primary: TemporaryPostgres | None = None
        self.adopted: Path | None = None  # an existing data directory to start, see from_data_dir
        self._bindir = Path(bindir) if bindir else None
        self._run_dir: Path | None = None
        self._socket_dir: Path | None = None
        self._scratch: list[Path] = []  # directories we created outside base_dir
        self._process: psutil.Process | None = None

    @classmethod
    def replica_of(
        cls,
        primary: TemporaryPostgres,
        base_dir: str | os.PathLike[str],
        *,
        settings: dict[str, str] | None = None,
    ) -> TemporaryPostgres:
        """A streaming replica of the running `primary` (pg_basebackup -R), not yet started."""
        replica = cls(
            base_dir,
            user=primary.user,
            password=primary.password,
            settings=settings,
            bindir=primary._bindir,
        )
        replica.primary = primary
        return replica

    @classmethod
    def from_data_dir(
        cls,
        data_dir: str | os.PathLike[str],
        base_dir: str | os.PathLike[str],
        *,
        user: str = "postgres",
        settings: dict[str, str] | None = None,
        bindir: str | os.PathLike[str] | None = None,
    ) -> TemporaryPostgres:
        """A cluster started from an existing data directory (a restored backup, say), not
        yet started; `base_dir` gets its log and socket. The directory must belong to the
        account the server runs as, mode 0700 or 0750. `stop()` leaves it in place.

        It starts with its own files' settings and recovery files plus `settings`: a copy of
        an archiving cluster should get `archive_mode=off` so it cannot write into the same
        archive. Once started, `wait_writable()` waits until recovery has ended."""
        cluster = cls(base_dir, user=user, settings=settings, bindir=bindir)
        cluster.adopted = Path(data_dir).resolve()
        return cluster

    # --- where things are ----------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        if self.adopted is not None:
            return self.adopted
        return self._require_run_dir() / "data"

    @property
    def log_file(self) -> Path:
        return self._require_run_dir() / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        if self._socket_dir is None:
            raise SandboxError("the temporary PostgreSQL cluster has not been started")
        return self._socket_dir

    @property
    def running(self) -> bool:
        return self._process is not None and _alive(self._process)

    def wait_writable(self, timeout: float = _START_TIMEOUT) -> None:
        """Return once the server is out of recovery (a restored copy reached its target and
        was promoted); SandboxError if it is still recovering after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.execute("select pg_is_in_recovery()")[0][0]:
            if time.monotonic() > deadline or not self.running:
                raise SandboxError(f"PostgreSQL on port {self.port} is still in recovery after "
                                   f"{timeout:g} s{self._log_tail()}")
            time.sleep(0.05)

    @property
    def dsn(self) -> str:
        """A libpq connection string over TCP to the `postgres` database."""
        parts = {"host": self.host, "port": str(self.port), "user": self.user,
                 "dbname": "postgres"}
        if self.password is not None:
            parts["password"] = self.password
        return " ".join(f"{key}={_conninfo_quote(value)}" for key, value in parts.items())

    def url(self, database: str = "postgres") -> str:
        """A postgresql:// URL over TCP to `database`."""
        credentials = self.user
        if self.password is not None:
            credentials += ":" + quote(self.password, safe="")
        return f"postgresql://{credentials}@{self.host}:{self.port}/{database}"

    # --- using it --------------------------------------------------------------------------

    def connect(self, database: str = "postgres", *, autocommit: bool = True) -> psycopg.Connection:
        """A new connection over the private Unix socket (trusted, no password needed)."""
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.user, dbname=database,
            autocommit=autocommit, connect_timeout=10,
        )

    def execute(
        self, sql: str, params: Any = None, *, database: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit mode; the rows it returned (empty if none)."""
        with self.connect(database) as conn:
            cursor = conn.execute(sql, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> TemporaryPostgres:
        """Create the cluster (or copy the primary) and start it; returns self once it accepts
        connections. Starting a running cluster does nothing."""
        if self.running:
            return self
        bindir = self._bindir = self._bindir or find_postgres_bindir()
        missing = [name for name in ("initdb", "pg_ctl", "pg_basebackup")
                   if not (bindir / name).is_file()]
        if missing:
            raise SandboxError(f"PostgreSQL binaries missing from {bindir}: "
                               f"{', '.join(missing)}; install the PostgreSQL server package")
        self._prepare_dirs()
        self.port = free_port(self.host)
        try:
            if self.adopted is not None:
                if not (self.adopted / "PG_VERSION").is_file():
                    raise SandboxError(f"{self.adopted} is not a PostgreSQL data directory "
                                       "(it has no PG_VERSION)")
            elif self.primary is None:
                self._initdb(bindir)
            else:
                self._basebackup(bindir, self.primary)
            self._pg_ctl_start(bindir)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and wait until its process is gone. Idempotent."""
        process, self._process = self._process, None
        if process is not None and _alive(process) and self._bindir is not None:
            self._run(
                [str(self._bindir / "pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast",
                 "-w", "-t", str(_STOP_TIMEOUT)],
                what="pg_ctl stop", check=False,
            )
        if process is not None:
            _wait_gone(process, _STOP_TIMEOUT)
        for scratch in self._scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        self._scratch.clear()

    def __repr__(self) -> str:
        role = "replica" if self.primary else "copy" if self.adopted else "primary"
        return f"<TemporaryPostgres {role} {self.host}:{self.port} pid={self.pid}>"

    # --- internals -------------------------------------------------------------------------

    def _require_run_dir(self) -> Path:
        if self._run_dir is None:
            raise SandboxError("the temporary PostgreSQL cluster has not been started")
        return self._run_dir

    def _prepare_dirs(self) -> None:
        owner = service_account("PostgreSQL")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        run_dir = self.base_dir / "postgres"
        if owner is not None and not reachable(self.base_dir, owner):
            # The server runs as another user who cannot reach base_dir (pytest's temporary
            # directories are private to root): use a directory of its own instead.
            run_dir = Path(tempfile.mkdtemp(prefix="opsplane-pg-"))
            self._scratch.append(run_dir)
        if (run_dir / "data").exists() and self.adopted != (run_dir / "data").resolve():
            shutil.rmtree(run_dir)  # a leftover from an earlier run: start afresh
        run_dir.mkdir(parents=True, exist_ok=True)
        socket_dir = run_dir / "sock"
        if len(str(socket_dir)) > _MAX_SOCKET_DIR:
            socket_dir = Path(tempfile.mkdtemp(prefix="opsplane-pgs-"))
            self._scratch.append(socket_dir)
        socket_dir.mkdir(exist_ok=True)
        if owner is not None:
            for path in (run_dir, socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self._run_dir, self._socket_dir = run_dir, socket_dir

    def _initdb(self, bindir: Path) -> None:
        argv = [
            str(bindir / "initdb"), "-D", str(self.data_dir), "-U", self.user,
            "--auth-local=trust",
            "--auth-host=" + ("scram-sha-256" if self.password is not None else "trust"),
            "--no-locale", "-E", "UTF8", "--no-sync",
        ]
        if self.password is None:
            self._run(argv, what="initdb")
            return
        pwfile = self._require_run_dir() / "pwfile"
        pwfile.write_text(self.password + "\n")
        try:
            owner = service_account("PostgreSQL")
            if owner is not None:
                os.chown(pwfile, owner.pw_uid, owner.pw_gid)
            pwfile.chmod(0o600)
            self._run([*argv, "--pwfile", str(pwfile)], what="initdb")
        finally:
            pwfile.unlink(missing_ok=True)

    def _basebackup(self, bindir: Path, primary: TemporaryPostgres) -> None:
        if not primary.running:
            raise SandboxError("a replica needs a running primary: start the primary first")
        argv = [
            str(bindir / "pg_basebackup"), "-h", primary.host, "-p", str(primary.port),
            "-U", primary.user, "-D", str(self.data_dir), "-R", "-X", "stream",
            "-c", "fast", "--no-sync",
        ]
        extra = {"PGPASSWORD": primary.password} if primary.password is not None else {}
        self._run(argv, what="pg_basebackup", env=extra)

    def _pg_ctl_start(self, bindir: Path) -> None:
        options = ["-p", str(self.port), "-k", str(self.socket_dir),
                   "-c", f"listen_addresses={self.host}"]
        for name, value in self.settings.items():
            options += ["-c", f"{name}={value}"]
        # pg_ctl hands -o to a shell, so every word is quoted.
        self._run(
            [str(bindir / "pg_ctl"), "start", "-D", str(self.data_dir), "-l", str(self.log_file),
             "-w", "-t", str(_START_TIMEOUT), "-o", " ".join(map(shlex.quote, options))],
            what="pg_ctl start",
        )
        pid_line = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        self._process = psutil.Process(int(pid_line))

    def _run(
        self, argv: list[str], *, what: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        owner = service_account("PostgreSQL")
        command = argv if owner is None else _as_user(owner.pw_name, argv)
        done = subprocess.run(  # noqa: S603 - argv built here, no shell
            command, cwd=self._require_run_dir(), env={**os.environ, **(env or {})},
            capture_output=True, text=True, check=False, timeout=_START_TIMEOUT + 30,
        )
        if check and done.returncode != 0:
            raise SandboxError(
                f"{what} failed (exit {done.returncode}) for the temporary PostgreSQL cluster "
                f"in {self._run_dir}: {_tail(done.stderr or done.stdout)}{self._log_tail()}"
            )
        return done


def server_can_reach(path: str | os.PathLike[str]) -> bool:
    """Whether the account a TemporaryPostgres server runs as may traverse every directory
    down to the existing `path` (always, when the server runs as us): where a program the
    server starts, such as its `archive_command`, can find its files."""
    owner = service_account("PostgreSQL")
    return owner is None or reachable(Path(path), owner)


def _as_user(user: str, argv: list[str]) -> list[str]:
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]
    raise SandboxError("running as root needs runuser or setpriv (util-linux) to drop to "
                       f"the '{user}' user for PostgreSQL: install util-linux")


def _alive(process: psutil.Process) -> bool:
    # A server we stopped may linger as a zombie when nothing reaps orphans (PID 1 in
    # some containers): it no longer runs, so it counts as gone.
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(process: psutil.Process, timeout: float) -> None:
    """Return once `process` is gone; SIGKILL it if it outlives `timeout`."""
    if _poll_gone(process, timeout):
        return
    try:
        process.kill()
    except psutil.NoSuchProcess:
        return
    if not _poll_gone(process, 5):
        raise SandboxError(f"PostgreSQL server pid {process.pid} survived SIGKILL")


def _poll_gone(process: psutil.Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(process):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _conninfo_quote(value: str) -> str:
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
