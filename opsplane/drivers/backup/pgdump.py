"""A logical copy of one PostgreSQL database: pg_dump's directory format kept as a sealed archive.

The row counts recorded with a dump come from the very snapshot pg_dump reads: a REPEATABLE
READ transaction exports its snapshot (`pg_export_snapshot()`), pg_dump imports it
(`--snapshot`) and, while it dumps, the same transaction counts every table. Counts and dump
therefore agree, however busy the database.

pg_dump writes uncompressed (`-Z 0`, its gzip is slower than zstd and single-threaded per
table); the dump is then sealed (`sealed.py`: zstd, AES-256-GCM, a SHA-256 manifest) into every
repository in one pass, and its scratch directory removed.

Passwords reach pg_dump and pg_restore through PGPASSWORD, never their command line. They
come from the newest installed PostgreSQL whose major version is at least the server's (an
older pg_dump refuses a newer server).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from opsplane.drivers.backup import command
from opsplane.drivers.backup.base import (
    BackupEngineError,
    BackupOutcome,
    Progress,
    StoredCopy,
    no_progress,
)
from opsplane.drivers.backup.pg_contents import count_rows, one
from opsplane.drivers.backup.sealed import SealedCopies

_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on a PostgreSQL server, reached over TCP."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None = None

    def connect(self, dbname: str | None = None, *, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(host=self.host, port=self.port, dbname=dbname or self.dbname,
                               user=self.user, password=self.password, autocommit=autocommit,
                               connect_timeout=15)

    def args(self) -> list[str]:
        """libpq connection options for pg_dump and pg_restore (no password)."""
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", self.dbname]

    def env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password} if self.password is not None else {}

    def __str__(self) -> str:
        return f"database {self.dbname} on {self.host}:{self.port}"


def find_pg_bindir(server_major: int) -> tuple[Path, int]:
    """The newest installed PostgreSQL bin directory holding pg_dump and pg_restore, and its
    major version; BackupEngineError when none is at least `server_major`."""
    candidates = [*Path("/usr/lib/postgresql").glob("*/bin")]
    found = shutil.which("pg_dump")
    if found:
        candidates.append(Path(found).resolve().parent)
    versions: dict[Path, int] = {}
    for bindir in candidates:
        if (bindir / "pg_dump").is_file() and (bindir / "pg_restore").is_file():
            done = command.run([str(bindir / "pg_dump"), "--version"], what="pg_dump --version",
                               check=False)
            match = _VERSION.search(done.stdout)
            if match:
                versions[bindir] = int(match.group(1))
    if not versions:
        raise BackupEngineError("pg_dump and pg_restore not found: install the PostgreSQL "
                                "client package, e.g. `apt-get install postgresql-client`")
    bindir, major = max(versions.items(), key=lambda item: item[1])
    if major < server_major:
        raise BackupEngineError(f"the newest pg_dump here is from PostgreSQL {major}, the server "
                                f"runs {server_major}: install postgresql-client-{server_major}")
    return bindir, major


class PgDumpBackup:
    """Logical backups of `database` of `component`, with `jobs` parallel pg_dump and
    pg_restore workers. `work_dir` holds the dump between writing and saving it (the
    system's temporary directory when None)."""

    def __init__(
        self,
        component: str,
        database: PostgresDatabase,
        copies: SealedCopies,
        *,
        jobs: int = 2,
        work_dir: str | Path | None = None,
        timeout: float = 6 * 3600,
    ) -> None:
        self.component = component
        self.database = database
        self.copies = copies
        self.jobs = max(1, jobs)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.timeout = timeout

    def backup(self, progress: Progress = no_progress) -> BackupOutcome:
        """Dump the database, seal the dump into every repository and remove it.

        Facts: `database`, `server_version` and `server_version_num`, `pg_dump_version`,
        `tables` ("schema.table" -> rows in the dumped snapshot), `format` "directory".
        `checksum` is the SHA-256 of the sealed archive's manifest, which names every object."""
        started = datetime.now(UTC)
        scratch = Path(tempfile.mkdtemp(prefix="opsplane-pgdump-", dir=self.work_dir))
        try:
            dump = scratch / "dump"
            progress("dump", None)
            facts = self._dump(dump)
            saved = self.copies.save_tree(dump, progress=progress)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return BackupOutcome(kind="dump", started=started, finished=datetime.now(UTC),
                             size_bytes=saved.size_bytes, copies=saved.copies, checksum=saved.checksum,
                             facts=facts)

    def restore(
        self, copy: StoredCopy, target: PostgresDatabase, *, create: bool = True,
        work_dir: str | Path | None = None, count: bool = True,
    ) -> dict[str, int]:
        """Load the dump `copy` names into `target` (created first with `create`; it must
        not exist then) with pg_restore, owners and privileges left out; the row counts of
        `target`'s tables afterwards (none asked with `count` False)."""
        scratch = Path(tempfile.mkdtemp(prefix="opsplane-pgrestore-",
                                        dir=work_dir or self.work_dir))
        try:
            self.copies.restore(copy, scratch)
            if not (scratch / "toc.dat").is_file():
                raise BackupEngineError(f"archive {copy.label} in repository "
                                        f"{copy.repository!r} holds no pg_dump directory")
            with target.connect("postgres") as admin:
                major = int(one(admin, "SHOW server_version_num")) // 10000
                if create:
                    try:
                        admin.execute(sql.SQL("CREATE DATABASE {}")
                                      .format(sql.Identifier(target.dbname)))
                    except psycopg.errors.DuplicateDatabase:
                        raise BackupEngineError(f"will not restore into {target}: it exists "
                                                "already (drop it or restore elsewhere)") from None
            bindir, _ = find_pg_bindir(major)
            command.run(
                [str(bindir / "pg_restore"), *target.args(), "-j", str(self.jobs),
                 "--no-owner", "--no-privileges", "--exit-on-error", str(scratch)],
                what=f"pg_restore into {target}", env=target.env(), timeout=self.timeout)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if not count:
            return {}
        with target.connect() as connection:
            return count_rows(connection)

    def verify(self, copy: StoredCopy, outcome: BackupOutcome, target: PostgresDatabase,
               work_dir: str | Path | None = None) -> list[str]:
        """Restore `copy` into the new database `target` and compare its tables and row
        counts with the outcome's facts: the problems found, none when all agree."""
        found = self.restore(copy, target, work_dir=work_dir)
        recorded = outcome.facts.get("tables", {})
        return [f"table {table} has {found.get(table)} rows after restore, the dump recorded "
                f"{recorded.get(table)}"
                for table in sorted(set(found) | set(recorded))
                if found.get(table) != recorded.get(table)]

    def _dump(self, dump: Path) -> dict[str, Any]:
        try:
            connection = self.database.connect(autocommit=False)
        except psycopg.Error as exc:
            raise BackupEngineError(f"pg_dump of {self.database}: cannot connect: "
                                    f"{str(exc).strip()}") from None
        try:
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            connection.read_only = True
            version_num = int(one(connection, "SHOW server_version_num"))
            version = str(one(connection, "SHOW server_version"))
            snapshot = str(one(connection, "SELECT pg_export_snapshot()"))
            bindir, dump_major = find_pg_bindir(version_num // 10000)
            argv = [str(bindir / "pg_dump"), *self.database.args(), "-Fd", "-j", str(self.jobs),
                    "-Z", "0", f"--snapshot={snapshot}", "-f", str(dump)]
            # pg_dump reads the snapshot while this transaction, which must stay open for
            # the snapshot to stay importable, counts the rows in it.
            dumper = _Background(lambda: command.run(
                argv, what=f"pg_dump of {self.database}", env=self.database.env(),
                timeout=self.timeout))
            try:
                tables = count_rows(connection)
            finally:
                dumper.join()
            connection.rollback()
        except psycopg.Error as exc:
            raise BackupEngineError(f"pg_dump of {self.database}: {str(exc).strip()}") from None
        finally:
            connection.close()
        return {"database": self.database.dbname, "server_version": version,
                "server_version_num": version_num, "pg_dump_version": dump_major,
                "tables": tables, "format": "directory"}


class _Background:
    """A call run in a thread; `join` waits for it and raises what it raised."""

    def __init__(self, call: Any) -> None:
        self._error: BaseException | None = None
        self._call = call
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._call()
        except BaseException as exc:  # noqa: BLE001 - handed to join
            self._error = exc

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

