"""The pgBackRest engine of a policy: one stanza per policy, a backup into each repository in
turn, and verification by restoring into a scratch cluster, running `pg_amcheck` and counting
rows as they were when the backup ended.

Counts are read as the backup ends, in one snapshot, with the WAL position it began at;
verification recovers exactly to that position (`--type=lsn`), so a busy database compares as
exactly as a quiet one. That position must have been archived: the counts are followed by a WAL
switch and a wait until the archiver has taken that segment, so it is in the archive when the
backup is recorded.

The counting starts, in a thread of its own with its own connection, as soon as pgBackRest says it
calls pg_backup_stop for the last repository's backup (or, failing that, says it has returned). It
thus overlaps what takes time without work: pg_backup_stop waiting for the archive, pgBackRest's
archive check, manifest and expire, and the driver's `info` and manifest read. pg_backup_stop
writes the backup's end into the WAL at once, so the snapshot is almost always past it; recovery
must reach that position to be consistent, so a snapshot that came before it (the stop LSN
pgBackRest reports) is discarded and the rows counted again. When pgBackRest says neither, the
counting follows the backup. A failed backup is reported as such, whatever the counting found."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from opsplane.backup.engines import ArchiveState, CopyRef, Restored
from opsplane.backup.policy import AppliedPolicy
from opsplane.config.types import SecretRef
from opsplane.drivers.backup import command
from opsplane.drivers.backup.base import BackupEngineError, BackupOutcome, Progress, Repository
from opsplane.drivers.backup.pg_contents import count_rows, counted_at
from opsplane.drivers.backup.pgbackrest import PgBackRest

if TYPE_CHECKING:
    from opsplane.config.models import Database, Inventory


# How long a backup waits for the WAL segment of its counted moment to reach the archive.
ARCHIVE_WAIT = 60.0


class PgBackRestEngine:
    """A policy's stanza in its repositories, through `drivers.backup.pgbackrest`."""

    def __init__(self, inv: Inventory, policy: AppliedPolicy, repositories: tuple[Repository, ...], *,
                 state_dir: Path, environ: Mapping[str, str]) -> None:
        self.policy = policy
        self.repositories = repositories
        settings = policy.settings
        component = inv.databases[policy.component or ""]
        self.database: Database = component
        self.dbname = component.database
        self.password = SecretRef(component.password).resolve(dict(environ)) if component.password else None
        data_dir = Path(settings.data_dir or "")
        self.driver = PgBackRest(
            policy.name, data_dir=data_dir, port=component.port or 5432, socket_dir=settings.socket_dir,
            config_dir=state_dir / "backup" / "pgbackrest" / policy.name, repositories=repositories,
            os_user=settings.os_user or _owner_of(data_dir), db_user=component.user,
            process_max=settings.processes)

    # --- the protocol ------------------------------------------------------------------------

    def prepare(self) -> None:
        for repository in self.repositories:
            if repository.s3 is None:  # pgBackRest writes there as the cluster's account
                path = Path(repository.path)
                path.mkdir(parents=True, exist_ok=True)
                _give(path, self.driver.os_user)
        self.driver.configure()
        # The stanza is created once for a set of repositories: creating it again costs a
        # command (and a connection to the server) at every backup.
        made = self.driver.config_dir / "stanza-created"
        digest = hashlib.sha256(self.driver.render_config().encode()).hexdigest()
        if made.is_file() and made.read_text().strip() == digest:
            return
        self.driver.create_stanza()
        made.write_text(digest + "\n")

    def backup(self, kind: str, progress: Progress) -> BackupOutcome:
        """One backup of `kind` into each repository, and the row counts of the moment the last
        one stopped (counted while pgBackRest finishes it, see the module's docstring)."""
        outcomes = []
        counting = _Counting(self._count)
        last = len(self.repositories) - 1
        try:
            for number, repository in enumerate(self.repositories):
                outcomes.append(self.driver.backup(
                    kind, repo=repository.name,  # type: ignore[arg-type]
                    progress=_phase(progress, f"backup {repository.name}"),
                    on_stopping=counting.start if number == last else None,
                    on_stopped=counting.start if number == last else None))
        except BaseException:
            counting.abandon()
            raise
        progress("count rows", None)
        stop = str(outcomes[-1].facts.get("lsn_stop") or "")
        snapshot, lsn, counts = counting.result() if counting.started else self._count()
        if stop and _lsn(snapshot) < _lsn(stop):
            # the snapshot came before pg_backup_stop had written the backup's end: count again
            snapshot, lsn, counts = self._count()
        first = outcomes[0]
        per_repo = {repo.name: dict(outcome.facts) for repo, outcome in zip(self.repositories, outcomes,
                                                                          strict=True)}
        return BackupOutcome(
            kind=first.kind, started=first.started, finished=max(o.finished for o in outcomes),
            # what this backup copied (a diff or incr: the changes), as pgBackRest's "backup size"
            size_bytes=int(first.facts.get("delta_bytes") or first.size_bytes), checksum=first.checksum,
            copies=tuple(_named(outcome, repo.name) for repo, outcome in zip(self.repositories, outcomes,
                                                                             strict=True)),
            facts={"prior": first.facts.get("prior"), "database": self.dbname,
                   "database_bytes": first.size_bytes, "contents": counts,
                   "counted_at_lsn": lsn, "repositories": per_repo},
        )

    def held(self, repository: str) -> set[str]:
        info = self.driver.info()
        return {backup.label for backup in info.backups_in(self.driver.repo_index(repository))}

    def check(self, repository: str) -> list[str]:
        return list(self.driver.verify(repository).problems)

    @contextmanager
    def restore_scratch(self, copy: CopyRef, scratch: Path, *, at: datetime | None = None,
                        latest: bool = False, drill: str | None = None) -> Iterator[Restored]:
        """Restore `copy` into a new data directory under `scratch` (to `at`; with `latest` to the
        end of the archive; else to the moment its rows were counted, else to the backup's end),
        start it on a free port, and yield what it holds and what `pg_amcheck` found."""
        from opsplane.drivers.sandbox.postgres import TemporaryPostgres

        work = scratch / f"{self.policy.name}-{copy.label}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        _give(work, self.driver.os_user)
        lsn = copy.facts.get("counted_at_lsn") if at is None and not latest else None
        try:
            restored = self.driver.restore(work / "data", repo=copy.repository,
                                           label=None if latest else copy.label, target_time=at,
                                           target_lsn=lsn, immediate=at is None and not lsn and not latest)
            # The copy keeps production's pg_hba.conf; the scratch server takes only its own
            # private socket (TemporaryPostgres listens on loopback), where it trusts us.
            (restored.data_dir / "pg_hba.conf").write_text("local all all trust\n")
            cluster = TemporaryPostgres.from_data_dir(restored.data_dir, work / "run",
                                                      user=self.database.user,
                                                      settings={"archive_mode": "off"})
            with cluster:
                cluster.wait_writable()
                with cluster.connect(self.dbname) as connection:
                    contents = count_rows(connection)
                    marker = _newest_marker(connection, drill) if drill else None
                    # the commit time of the last transaction recovery replayed: how far it got
                    replayed = connection.execute("SELECT pg_last_xact_replay_timestamp()").fetchone()
                problems = _amcheck(cluster, self.dbname, self.database.user)
                yield Restored(address=f"{cluster.host}:{cluster.port}", contents=contents,
                               checks={"pg_amcheck": problems}, newest_marker=marker,
                               recovered_to=replayed[0] if replayed else None)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def expire(self, repository: str, label: str) -> None:
        self.driver.expire(label, repo=repository)

    def archive_state(self) -> ArchiveState:
        """The server's archiver (pg_stat_archiver) and the newest WAL segment in each repository
        (pgBackRest info). A repository that cannot be read holds nothing, as far as anyone can
        restore from it."""
        try:
            with self._connect() as connection:
                row = connection.execute(
                    "SELECT last_archived_wal, last_archived_time, last_failed_wal, last_failed_time "
                    "FROM pg_stat_archiver").fetchone()
        except psycopg.Error as exc:
            raise BackupEngineError(f"reading {self.policy.component}'s archiver: "
                                    f"{str(exc).strip()}") from None
        last_wal, last_time, failed_wal, failed_time = row if row else (None, None, None, None)
        failing = None
        if failed_time is not None and (last_time is None or failed_time > last_time):
            failing = (f"archive_command failed for segment {failed_wal} at "
                       f"{failed_time.isoformat(timespec='seconds')}")
        try:
            info = self.driver.info()
            newest = {archive.repo: archive.wal_max for archive in info.archives}
        except BackupEngineError:
            newest = {}
        repos = {repo.name: newest.get(index) for index, repo in enumerate(self.repositories, start=1)}
        return ArchiveState(last_wal, last_time, failing, repos)

    @contextmanager
    def markers(self, drill: str, every: float) -> Iterator[Callable[[], int]]:
        """A marker row in `opsplane.drill_markers` every `every` seconds while open, each in its
        own transaction with the server's clock; the drill's rows are removed after."""
        stop = threading.Event()
        written = [0]
        with self._connect() as connection:
            connection.execute("CREATE SCHEMA IF NOT EXISTS opsplane")
            connection.execute("CREATE TABLE IF NOT EXISTS opsplane.drill_markers "
                               "(drill text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())")

        def write() -> None:
            with self._connect() as writer:
                while not stop.is_set():
                    writer.execute("INSERT INTO opsplane.drill_markers (drill) VALUES (%s)", (drill,))
                    written[0] += 1
                    stop.wait(every)

        thread = threading.Thread(target=write, name=f"drill-markers-{drill}", daemon=True)
        thread.start()
        try:
            yield lambda: written[0]
        finally:
            stop.set()
            thread.join(timeout=30)
            with self._connect() as connection:
                connection.execute("DELETE FROM opsplane.drill_markers WHERE drill = %s", (drill,))

    # --- restores ----------------------------------------------------------------------------

    def restore_into(self, copy: CopyRef, target: Path, *, at: datetime | None, latest: bool) -> str:
        """Restore `copy` as a data directory `target` (new or empty), not started."""
        restored = self.driver.restore(target, repo=copy.repository, label=None if latest else copy.label,
                                       target_time=at, immediate=not latest and at is None)
        return (f"a PostgreSQL data directory at {restored.data_dir}, recovering to {_recovery(at, latest)} "
                f"when started (archive_mode off)")

    def restore_beside(self, copy: CopyRef, place: Path, *, at: datetime | None, latest: bool) -> str:
        """Restore `copy` into a new cluster under `place` and leave it running on a free port."""
        from opsplane.drivers.sandbox.postgres import TemporaryPostgres

        place.mkdir(parents=True, exist_ok=True)
        _give(place, self.driver.os_user)
        restored = self.driver.restore(place / "data", repo=copy.repository,
                                       label=None if latest else copy.label,
                                       target_time=at, immediate=not latest and at is None)
        cluster = TemporaryPostgres.from_data_dir(restored.data_dir, place / "run", user=self.database.user,
                                                  settings={"archive_mode": "off"}).start()
        cluster.wait_writable(timeout=3600)
        from opsplane.drivers.sandbox.postgres import find_postgres_bindir

        stop = [str(find_postgres_bindir() / "pg_ctl"), "stop", "-D", str(restored.data_dir)]
        if os.geteuid() == 0 and self.driver.os_user:
            stop = ["runuser", "-u", self.driver.os_user, "--", *stop]
        return (f"a new PostgreSQL cluster on {cluster.host}:{cluster.port} (socket {cluster.socket_dir}, "
                f"data {restored.data_dir}), recovered to {_recovery(at, latest)}; it keeps running: "
                f"stop it with `{shlex.join(stop)}`")

    def restore_over(self, copy: CopyRef, *, at: datetime | None, latest: bool) -> str:
        """Stop the production cluster, restore `copy` over its data directory (pgBackRest's
        delta restore: only what differs is written), and start it again with the options it
        ran with; it keeps archiving."""
        from opsplane.drivers.sandbox.postgres import find_postgres_bindir

        data_dir = self.driver.data_dir
        opts_file = data_dir / "postmaster.opts"
        options = _start_options(opts_file.read_text() if opts_file.is_file() else "")
        pg_ctl = str(find_postgres_bindir() / "pg_ctl")
        user = self.driver.os_user
        if (data_dir / "postmaster.pid").is_file():
            command.run([pg_ctl, "stop", "-D", str(data_dir), "-m", "fast", "-w", "-t", "300"],
                        what=f"stopping {self.policy.component}", user=user, timeout=330)
        self.driver.restore(data_dir, repo=copy.repository, label=None if latest else copy.label,
                            target_time=at, immediate=not latest and at is None, delta=True,
                            keep_archiving=True)
        log = self.driver.config_dir / "log" / "postgres-restored.log"
        command.run([pg_ctl, "start", "-D", str(data_dir), "-l", str(log), "-w", "-t", "3600",
                     "-o", " ".join(shlex.quote(option) for option in options)],
                    what=f"starting {self.policy.component} after the restore", user=user, timeout=3630)
        self._wait_writable()
        return (f"{self.policy.component} restored in place to {_recovery(at, latest)} and running again "
                f"(its log since: {log})")

    def _wait_writable(self, timeout: float = 3600.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self._connect() as connection:
                    row = connection.execute("SELECT pg_is_in_recovery()").fetchone()
                    if row is not None and not row[0]:
                        return
            except psycopg.OperationalError:
                pass
            time.sleep(0.2)
        raise BackupEngineError(f"{self.policy.component} is still recovering after {timeout:g} s")

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(host=str(self.policy.settings.socket_dir), port=self.database.port or 5432,
                               user=self.database.user, dbname=self.dbname, password=self.password,
                               connect_timeout=10, autocommit=True)

    # --- helpers -----------------------------------------------------------------------------

    def _count(self, stop: threading.Event | None = None) -> tuple[str, str | None, dict[str, int]]:
        """The rows of each table as the backup ends: the WAL position the snapshot was taken at,
        that position once it is in the archive, and the counts. The second is None when nothing
        was written since the backup ended (its end is the counted moment), or when archiving has
        not taken that position within ARCHIVE_WAIT (or `stop` is set first): verification then
        restores to the backup's own end."""
        try:
            with self._connect() as connection:
                lsn, counts = counted_at(connection)
                segment = connection.execute("SELECT pg_walfile_name(%s::pg_lsn)", (lsn,)).fetchone()
                # the counted moment on its way to the archive; a switch with nothing written since
                # the backup's own does nothing: the backup's end is then that very moment
                switched = connection.execute("SELECT pg_switch_wal() > %s::pg_lsn", (lsn,)).fetchone()
                if not (switched and switched[0]):
                    return lsn, None, counts
                deadline = time.monotonic() + ARCHIVE_WAIT
                pause = stop if stop is not None else threading.Event()
                while time.monotonic() < deadline:
                    archived = connection.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
                    if segment and archived and archived[0] and archived[0] >= segment[0]:
                        return lsn, lsn, counts
                    if pause.wait(0.1):
                        break
                return lsn, None, counts
        except psycopg.Error as exc:
            raise BackupEngineError(f"counting the rows of {self.dbname} after the backup: "
                                    f"{str(exc).strip()}") from None


class _Counting:
    """`count` run in a thread of its own once `start` is called (from the backup's output, when
    pg_backup_stop has returned); `result` waits for it and gives what it returned or raises
    what it raised; `abandon` (the backup failed) waits for it and drops both."""

    def __init__(self, count: Callable[[threading.Event], tuple[str, str | None, dict[str, int]]]) -> None:
        self._count = count
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._found: tuple[str, str | None, dict[str, int]] | None = None
        self._failed: BaseException | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self, _stop_lsn: str = "") -> None:
        """Start counting, once (later calls do nothing)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pgbackrest-count", daemon=True)
            self._thread.start()

    def result(self) -> tuple[str, str | None, dict[str, int]]:
        assert self._thread is not None
        self._thread.join()
        if self._failed is not None:
            raise self._failed
        assert self._found is not None
        return self._found

    def abandon(self) -> None:
        if self._thread is not None:
            self._stop.set()  # no use waiting for the archive now
            self._thread.join()

    def _run(self) -> None:
        try:
            self._found = self._count(self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that asks for the result
            self._failed = exc


def _lsn(text: str) -> int:
    """A WAL position ("16/B374D848") as a number."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def _newest_marker(connection: psycopg.Connection[Any], drill: str) -> datetime | None:
    """The newest marker of `drill` in a restored copy (None: none made it)."""
    try:
        row = connection.execute("SELECT max(at) FROM opsplane.drill_markers WHERE drill = %s",
                                 (drill,)).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


def _recovery(at: datetime | None, latest: bool) -> str:
    if at is not None:
        return f"{at.isoformat(timespec='seconds')}"
    return "the end of the archive" if latest else "the end of the backup"


def _start_options(opts: str) -> list[str]:
    """The server options a cluster last ran with (its postmaster.opts), without the program and
    its data directory: what `pg_ctl start -o` must hand it again."""
    words = shlex.split(opts)[1:]
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word == "-D":
            skip = True
        else:
            kept.append(word)
    return kept


def _phase(progress: Progress, phase: str) -> Progress:
    """`progress` with every report under `phase`."""
    return lambda _said, fraction: progress(phase, fraction)


def _named(outcome: BackupOutcome, repository: str) -> Any:
    from dataclasses import replace

    return replace(outcome.copies[0], repository=repository)


def _owner_of(data_dir: Path) -> str | None:
    """The account that owns the data directory: pgBackRest must run as it."""
    import pwd

    try:
        return pwd.getpwuid(data_dir.stat().st_uid).pw_name
    except (OSError, KeyError):
        return None


def _give(path: Path, user: str | None) -> None:
    if user is None or os.geteuid() != 0:
        return
    import pwd

    account = pwd.getpwnam(user)
    os.chown(path, account.pw_uid, account.pw_gid)


def _amcheck(cluster: Any, dbname: str, user: str) -> list[str]:
    """What `pg_amcheck` finds in the restored database's indexes and tables (none: sound)."""
    from opsplane.drivers.sandbox.postgres import find_postgres_bindir

    cluster.execute("CREATE EXTENSION IF NOT EXISTS amcheck", database=dbname)
    argv = [str(find_postgres_bindir() / "pg_amcheck"), "-h", str(cluster.socket_dir),
            "-p", str(cluster.port), "-U", user, "--heapallindexed", "--no-dependent-toast", dbname]
    done = command.run(argv, what="pg_amcheck", check=False, timeout=3600)
    if done.returncode == 0:
        return []
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return lines[:20] or [f"pg_amcheck exited {done.returncode}"]
