"""A PostgreSQL server's part in streaming replication, as a failover needs it: what each server
is (primary or standby) and how far behind, fencing the old primary (read-only over the
connection, or stopped by pg_ctl on this host), waiting for the standby to receive the last of
its WAL, and promoting the standby (`pg_promote()`, or pg_ctl on this host).

Positions in the WAL are compared as numbers (`lsn_bytes`). Every failure is a StandbyError
naming the server and what to do."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from opsplane.drivers.backup import command
from opsplane.errors import OpsplaneError

_POLL = 0.05


class StandbyError(OpsplaneError):
    """A server could not be read, fenced, caught up or promoted."""


@dataclass(frozen=True)
class Endpoint:
    """How to log in to one PostgreSQL server over TCP."""

    host: str
    port: int
    user: str = "postgres"
    password: str | None = None
    dbname: str = "postgres"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self, timeout: float = 3.0) -> psycopg.Connection[Any]:
        """An autocommit connection; StandbyError naming the address when it cannot be made."""
        try:
            return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                   dbname=self.dbname, autocommit=True, prepare_threshold=None,
                                   connect_timeout=max(1, round(timeout)))
        except psycopg.Error as exc:
            raise StandbyError(f"cannot reach PostgreSQL at {self.address} as {self.user}: "
                               f"{_first_line(exc)}") from None


@dataclass(frozen=True)
class ServerState:
    """What one server answered (or why it did not): its role and its place in the WAL."""

    address: str
    reachable: bool
    error: str | None = None
    in_recovery: bool | None = None
    flush_lsn: str | None = None  # a primary: the WAL it has flushed
    receive_lsn: str | None = None  # a standby: the WAL it has received and flushed
    replay_lsn: str | None = None  # a standby: the WAL it has applied
    last_replayed_at: float | None = None  # a standby: seconds since the last replayed commit
    streaming: bool | None = None  # a standby: whether its WAL receiver streams now
    read_only: bool | None = None  # default_transaction_read_only

    def as_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if value is not None}


def look(server: Endpoint, *, timeout: float = 3.0) -> ServerState:
    """The server's state; `reachable` false, with the reason, when it does not answer."""
    try:
        with server.connect(timeout) as conn:
            row = conn.execute("select pg_is_in_recovery(),"
                               " current_setting('default_transaction_read_only') = 'on'").fetchone()
            assert row is not None
            in_recovery, read_only = bool(row[0]), bool(row[1])
            if not in_recovery:
                flushed = _scalar(conn, "select pg_current_wal_flush_lsn()::text")
                return ServerState(server.address, True, in_recovery=False, flush_lsn=flushed,
                                   read_only=read_only)
            found = conn.execute(
                "select pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,"
                " extract(epoch from now() - pg_last_xact_replay_timestamp())::float8,"
                " exists (select 1 from pg_stat_wal_receiver where status = 'streaming')").fetchone()
            assert found is not None
            return ServerState(server.address, True, in_recovery=True, receive_lsn=found[0],
                               replay_lsn=found[1], last_replayed_at=found[2], streaming=bool(found[3]),
                               read_only=read_only)
    except StandbyError as exc:
        return ServerState(server.address, False, error=str(exc))
    except psycopg.Error as exc:
        return ServerState(server.address, False, error=f"PostgreSQL at {server.address}: {_first_line(exc)}")


def lsn_bytes(lsn: str) -> int:
    """A WAL position ('16/B374D848') as a byte offset."""
    high, _, low = lsn.partition("/")
    try:
        return (int(high, 16) << 32) + int(low, 16)
    except ValueError:
        raise StandbyError(f"{lsn!r} is not a WAL position") from None


def lag(primary: ServerState, standby: ServerState) -> dict[str, float | int | None]:
    """How far the standby is behind: bytes of WAL the primary flushed that it has not received
    and not replayed, and seconds (0 when it has replayed everything; otherwise the age of the
    last commit it replayed). None where a server did not say."""
    behind: dict[str, float | int | None] = {"receive_bytes": None, "replay_bytes": None, "seconds": None}
    if primary.flush_lsn and standby.receive_lsn:
        behind["receive_bytes"] = max(0, lsn_bytes(primary.flush_lsn) - lsn_bytes(standby.receive_lsn))
    if primary.flush_lsn and standby.replay_lsn:
        behind["replay_bytes"] = max(0, lsn_bytes(primary.flush_lsn) - lsn_bytes(standby.replay_lsn))
    if behind["replay_bytes"] == 0:
        behind["seconds"] = 0.0
    elif standby.last_replayed_at is not None:
        behind["seconds"] = round(standby.last_replayed_at, 3)
    return behind


# --- fencing the old primary ---------------------------------------------------------------


def fence_read_only(server: Endpoint, *, timeout: float = 5.0) -> str:
    """Make the server refuse writes: `default_transaction_read_only` on by ALTER SYSTEM and a
    reload, every other client session ended, and a new session checked to be read-only. Returns
    the WAL position it had flushed then (every commit a client saw is at or before it)."""
    with server.connect(timeout) as conn:
        try:
            conn.execute("alter system set default_transaction_read_only = on")
            conn.execute("select pg_reload_conf()")
            _wait_read_only(server, timeout)
            conn.execute("select pg_terminate_backend(pid) from pg_stat_activity"
                         " where pid <> pg_backend_pid() and backend_type = 'client backend'")
            return _scalar(conn, "select pg_current_wal_flush_lsn()::text")
        except psycopg.Error as exc:
            raise StandbyError(f"could not make PostgreSQL at {server.address} read-only: "
                               f"{_first_line(exc)}; the fence needs a superuser") from None


def unfence_read_only(server: Endpoint, *, timeout: float = 5.0) -> None:
    """Undo `fence_read_only`: the server takes writes again."""
    with server.connect(timeout) as conn:
        try:
            conn.execute("alter system reset default_transaction_read_only")
            conn.execute("select pg_reload_conf()")
        except psycopg.Error as exc:
            raise StandbyError(f"could not make PostgreSQL at {server.address} writable again: "
                               f"{_first_line(exc)}") from None


def flush_lsn(server: Endpoint, *, timeout: float = 3.0) -> str:
    """The WAL position a primary has flushed."""
    with server.connect(timeout) as conn:
        return _scalar(conn, "select pg_current_wal_flush_lsn()::text")


def running(data_dir: str, *, os_user: str | None = None) -> bool:
    """Whether a server runs on `data_dir` (pg_ctl status)."""
    done = command.run([_pg_ctl(data_dir), "status", "-D", data_dir], what=f"pg_ctl status of {data_dir}",
                       user=os_user or owner_of(data_dir), check=False, timeout=30)
    if done.returncode not in (0, 3):
        raise StandbyError(f"pg_ctl status of {data_dir} failed (exit {done.returncode}): "
                           f"{command.tail(done)}")
    return done.returncode == 0


def fence_stop(data_dir: str, *, os_user: str | None = None, timeout: float = 30.0) -> bool:
    """Stop the server on `data_dir` (pg_ctl stop -m fast, which first sends its standbys every
    bit of WAL); whether it was running."""
    user = os_user or owner_of(data_dir)
    if not running(data_dir, os_user=user):
        return False
    seconds = str(max(1, round(timeout)))
    command.run([_pg_ctl(data_dir), "stop", "-D", data_dir, "-m", "fast", "-w", "-t", seconds],
                what=f"pg_ctl stop of the old primary in {data_dir}", user=user, timeout=timeout + 10)
    return True


# --- the standby -------------------------------------------------------------------------


def wait_received(standby: Endpoint, lsn: str, *, timeout: float) -> str:
    """Return once the standby has received (and flushed) the WAL up to `lsn`, with the position
    it reached; StandbyError saying how far it got when `timeout` runs out first."""
    wanted = lsn_bytes(lsn)
    deadline = time.monotonic() + timeout
    with standby.connect() as conn:
        while True:
            received = _scalar(conn, "select coalesce(pg_last_wal_receive_lsn(), '0/0')::text")
            if lsn_bytes(received) >= wanted:
                return received
            if time.monotonic() > deadline:
                raise StandbyError(f"the standby at {standby.address} received the WAL up to {received}, not "
                                   f"{lsn}, within {timeout:g} s: is it streaming from the old primary?")
            time.sleep(_POLL)


def promote(standby: Endpoint, *, timeout: float) -> None:
    """Promote the standby with `pg_promote()` and return once it takes writes; StandbyError when
    it refuses or is still in recovery after `timeout`."""
    with standby.connect() as conn:
        try:
            done = _scalar(conn, f"select pg_promote(true, {max(1, round(timeout))})")
        except psycopg.Error as exc:
            raise StandbyError(f"the standby at {standby.address} refused pg_promote(): {_first_line(exc)}; "
                               f"it needs a superuser, or EXECUTE on pg_promote granted") from None
    if not done:
        raise StandbyError(f"the standby at {standby.address} was not promoted within {timeout:g} s; "
                           f"see its server log")
    wait_primary(standby, timeout=timeout)


def promote_with_pg_ctl(standby: Endpoint, data_dir: str, *, os_user: str | None = None,
                        timeout: float) -> None:
    """Promote the standby on `data_dir` with `pg_ctl promote` and return once it takes writes."""
    command.run([_pg_ctl(data_dir), "promote", "-D", data_dir, "-w", "-t", str(max(1, round(timeout)))],
                what=f"pg_ctl promote of the standby in {data_dir}", user=os_user or owner_of(data_dir),
                timeout=timeout + 10)
    wait_primary(standby, timeout=timeout)


def wait_primary(server: Endpoint, *, timeout: float) -> None:
    """Return once the server is out of recovery; StandbyError otherwise."""
    deadline = time.monotonic() + timeout
    with server.connect() as conn:
        while _scalar(conn, "select pg_is_in_recovery()"):
            if time.monotonic() > deadline:
                raise StandbyError(f"PostgreSQL at {server.address} is still in recovery after {timeout:g} s")
            time.sleep(_POLL)


# --- helpers -------------------------------------------------------------------------------


def owner_of(data_dir: str) -> str:
    """The account that owns a data directory: the one pg_ctl must run as."""
    try:
        return pwd.getpwuid(os.stat(data_dir).st_uid).pw_name
    except FileNotFoundError:
        raise StandbyError(f"there is no data directory {data_dir} on this host") from None
    except KeyError:
        raise StandbyError(f"the owner of {data_dir} has no account name; give os_user") from None


def _pg_ctl(data_dir: str) -> str:
    """pg_ctl of the data directory's major version (Debian keeps one per version off PATH)."""
    try:
        major = (Path(data_dir) / "PG_VERSION").read_text().strip()
    except OSError:
        major = ""
    candidates = [Path(f"/usr/lib/postgresql/{major}/bin/pg_ctl")] if major else []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,  # noqa: S603
                               check=False)
        if found.returncode == 0:
            candidates.append(Path(found.stdout.strip()) / "pg_ctl")
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    on_path = shutil.which("pg_ctl")
    candidates += [Path(on_path)] if on_path else []
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise StandbyError("pg_ctl not found: install the PostgreSQL server package on this host")


def _wait_read_only(server: Endpoint, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with server.connect(timeout) as fresh:
            if _scalar(fresh, "show default_transaction_read_only") == "on":
                return
        if time.monotonic() > deadline:
            raise StandbyError(f"PostgreSQL at {server.address} still starts sessions writable {timeout:g} s "
                               f"after the reload")
        time.sleep(_POLL)


def _scalar(conn: psycopg.Connection[Any], sql: str) -> Any:
    row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
    return row[0] if row is not None else None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
