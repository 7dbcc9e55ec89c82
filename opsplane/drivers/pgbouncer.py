"""PgBouncer, the pool clients reach PostgreSQL through: its admin console (the `pgbouncer`
database: PAUSE, RESUME, RELOAD, SHOW) and the `[databases]` entry of its ini file, which
`repoint` rewrites.

A switch of the server behind a database, without errors for the clients:

    PAUSE db      in-flight transactions finish, the server connections close, clients queue
    repoint       the entry's host and port rewritten, everything else of the file kept; RELOAD
    RESUME db     the queued clients go on, to the new server

The admin console speaks only the simple query protocol: every command here is sent without
parameters, which psycopg sends that way."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg

from opsplane.errors import OpsplaneError

ADMIN_DATABASE = "pgbouncer"
_NAME = re.compile(r"^[A-Za-z0-9_.\-*]+$")


class PgBouncerError(OpsplaneError):
    """PgBouncer could not be reached, refused a command, or its ini file could not be changed."""


def find_pgbouncer() -> str:
    """The path of the pgbouncer program; PgBouncerError saying how to install it otherwise."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise PgBouncerError("pgbouncer not found on PATH or in /usr/sbin: install it, e.g. "
                             "`apt-get install pgbouncer`")
    return found


@dataclass(frozen=True)
class Repointed:
    """What `repoint` changed: the entry's address before and after."""

    database: str
    old_host: str | None
    old_port: int | None
    host: str
    port: int


class PgBouncer:
    """A client of one PgBouncer's admin console, as a user in its `admin_users`.

    One connection is opened on first use and kept until `close()` (or the end of a `with`
    block). `timeout` bounds connecting, and each command that may wait (PAUSE)."""

    def __init__(self, host: str, port: int, *, user: str = "pgbouncer", password: str | None = None,
                 timeout: float = 5.0) -> None:
        self.host, self.port, self.user, self.password, self.timeout = host, port, user, password, timeout
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # --- the admin console -----------------------------------------------------------------

    def command(self, sql: str, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Run one admin command; the rows it answered, as dicts by column name.

        A command still waiting after `timeout` seconds is given up: the admin console does not
        take cancel requests, so the connection is cut (the next command opens another) and
        PgBouncerError raised. What the command started may go on in PgBouncer."""
        conn = self._connection()
        limit = self.timeout if timeout is None else timeout
        cut = threading.Event()
        timer = threading.Timer(limit, _cut, args=(conn, cut))
        timer.start()
        try:
            cursor = conn.execute(sql)  # no parameters: the simple query protocol
            if cursor.description is None:
                return []
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except psycopg.Error as exc:
            if conn.closed or conn.broken or cut.is_set():
                self.close()
            if cut.is_set():
                raise PgBouncerError(f"PgBouncer at {self.address}: {sql} did not finish within {limit:g} s; "
                                     f"gave up waiting") from None
            raise PgBouncerError(f"PgBouncer at {self.address} refused {sql}: {_message(exc)}") from None
        finally:
            timer.cancel()

    def show_pools(self) -> list[dict[str, Any]]:
        """SHOW POOLS: per database and user, clients active and waiting, server connections."""
        return self.command("SHOW POOLS")

    def show_databases(self) -> list[dict[str, Any]]:
        """SHOW DATABASES: each database with the host, port and database it points at, and
        whether it is paused."""
        return self.command("SHOW DATABASES")

    def database(self, name: str) -> dict[str, Any]:
        """The SHOW DATABASES row of `name`; PgBouncerError when PgBouncer has no such database."""
        for row in self.show_databases():
            if row.get("name") == name:
                return row
        raise PgBouncerError(f"PgBouncer at {self.address} has no database {name!r}: add it to the "
                             f"[databases] section of its ini file")

    def pause(self, database: str, *, timeout: float | None = None) -> None:
        """PAUSE `database`: returns once every transaction in flight has ended and its server
        connections are closed; new queries wait in PgBouncer. PgBouncerError, with the pause
        undone, when that takes longer than `timeout` (a transaction left open, say)."""
        name = _checked(database)
        try:
            self.command(f"PAUSE {name}", timeout=timeout)
        except PgBouncerError as failed:
            try:
                self.resume(name)
            except PgBouncerError as exc:
                raise PgBouncerError(f"{failed}; and RESUME {name} failed too, so clients may be left "
                                     f"waiting: {exc}") from None
            raise

    def resume(self, database: str) -> bool:
        """RESUME `database`; whether it was paused (resuming one that is not does nothing)."""
        name = _checked(database)
        try:
            self.command(f"RESUME {name}")
        except PgBouncerError as exc:
            if "not paused" in str(exc):
                return False
            raise
        return True

    def reload(self) -> None:
        """RELOAD: PgBouncer reads its ini file again."""
        self.command("RELOAD")

    def repoint(self, config_file: str | os.PathLike[str], database: str, host: str, port: int) -> Repointed:
        """Point `database` at `host`:`port` in PgBouncer's ini file (every other line and setting
        kept) and RELOAD; PgBouncerError unless PgBouncer then reports the new address."""
        path = Path(config_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise PgBouncerError(f"cannot read PgBouncer's ini file {path}: {exc.strerror}") from None
        old = database_entry(text, database)
        if old is None:
            raise PgBouncerError(f"{path} has no entry for database {database!r} in [databases]: add one, "
                                 f"or name the entry the clients use")
        write_atomically(path, repointed(text, database, host, port))
        self.reload()
        now = self.database(database)
        if (str(now.get("host")), int(now.get("port") or 0)) != (host, port):
            raise PgBouncerError(f"PgBouncer at {self.address} still points {database} at {now.get('host')}:"
                                 f"{now.get('port')} after RELOAD: is {path} the file it was started with?")
        old_port = old.get("port")
        return Repointed(database, old.get("host"), int(old_port) if old_port else None, host, port)

    # --- the connection --------------------------------------------------------------------

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        try:
            self._conn = psycopg.connect(
                host=self.host, port=self.port, user=self.user, password=self.password, dbname=ADMIN_DATABASE,
                autocommit=True, prepare_threshold=None, connect_timeout=max(1, round(self.timeout)),
            )
        except psycopg.Error as exc:
            raise PgBouncerError(f"cannot reach PgBouncer's admin console at {self.address} as {self.user}: "
                                 f"{_message(exc)}; is it running, and is {self.user} in its admin_users?"
                                 ) from None
        return self._conn


# --- the ini file ------------------------------------------------------------------------

_SECTION = re.compile(r"^\s*\[\s*([^\]]+?)\s*\]\s*$")
_ENTRY = re.compile(r'^(\s*)("(?:[^"]|"")+"|[^=;#\s]+)(\s*=\s*)(.*?)(\s*)$')
_PAIR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*('(?:[^']|'')*'|[^\s']*)")


def parse_connstring(text: str) -> list[tuple[str, str]]:
    """The `key=value` pairs of a [databases] entry, in order, values as written (quotes kept)."""
    return _split_connstring(text)[0]


def _split_connstring(text: str) -> tuple[list[tuple[str, str]], str]:
    """The pairs of an entry, and what follows them on the line (a comment, kept as written)."""
    pairs = []
    at = 0
    while text[at:].strip() and text[at:].lstrip()[0] not in ";#":
        found = _PAIR.match(text, at)
        if found is None:
            raise PgBouncerError(f"cannot read the connection string {text!r} after position {at}")
        pairs.append((found.group(1), found.group(2)))
        at = found.end()
    return pairs, text[at:]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def _entries(text: str) -> Iterator[tuple[int, re.Match[str]]]:
    """Each line of the [databases] section that names a database, with its index."""
    section = None
    for index, line in enumerate(text.splitlines()):
        header = _SECTION.match(line)
        if header:
            section = header.group(1).lower()
            continue
        if section != "databases" or line.lstrip()[:1] in ("", ";", "#"):
            continue
        entry = _ENTRY.match(line)
        if entry:
            yield index, entry


def _entry_name(entry: re.Match[str]) -> str:
    name = entry.group(2)
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def database_entry(text: str, database: str) -> dict[str, str] | None:
    """The settings of `database`'s entry in an ini file's [databases] section (host, port,
    dbname, ...), or None when it has none."""
    for _, entry in _entries(text):
        if _entry_name(entry) == database:
            return {key: _unquote(value) for key, value in parse_connstring(entry.group(4))}
    return None


def repointed(text: str, database: str, host: str, port: int) -> str:
    """The ini file `text` with `database`'s entry pointing at `host`:`port`; every other line,
    and every other setting of the entry, as it was. PgBouncerError when there is no entry."""
    lines = text.splitlines(keepends=True)
    for index, entry in _entries(text):
        if _entry_name(entry) != database:
            continue
        found, comment = _split_connstring(entry.group(4))
        new = {"host": _quote(host), "port": str(port)}
        merged = [(key, new.pop(key, value)) for key, value in found] + list(new.items())
        connstring = " ".join(f"{key}={value}" for key, value in merged)
        ending = lines[index][len(lines[index].rstrip("\r\n")):]
        lines[index] = f"{entry.group(1)}{entry.group(2)}{entry.group(3)}{connstring}{comment}{ending}"
        return "".join(lines)
    raise PgBouncerError(f"no entry for database {database!r} in the [databases] section")


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[^\s']+", value) else "'" + value.replace("'", "''") + "'"


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one rename, keeping its mode and owner (PgBouncer, which
    reads it on RELOAD, may run as another user)."""
    try:
        status = path.stat()
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "w") as new:
                new.write(text)
            os.chmod(temporary, status.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(temporary, status.st_uid, status.st_gid)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise PgBouncerError(f"cannot rewrite PgBouncer's ini file {path}: {exc.strerror}") from None


def _checked(database: str) -> str:
    if not _NAME.match(database):
        raise PgBouncerError(f"{database!r} is not a database name PgBouncer's admin console takes")
    return database


def _cut(conn: psycopg.Connection[Any], cut: threading.Event) -> None:
    """End a connection whose command waits too long, from another thread: shutting its socket
    down wakes the waiting read with an error."""
    cut.set()
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except (psycopg.Error, OSError):
        pass


def _message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return (primary or str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
