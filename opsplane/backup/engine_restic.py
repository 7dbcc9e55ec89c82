"""The engines that keep whole snapshots: Redis RDB snapshots, file trees and opsplane's own SQLite
store with restic (one restic repository per opsplane repository and policy), logical PostgreSQL
dumps as sealed archives (`drivers/backup/sealed.py`, decision 0026). Each saves its data to every
repository of the policy and is verified by restoring a copy and checking it the driver's way: a
scratch Redis with the same keys per database, the same files, an `integrity_check` and the same
row counts, or `pg_restore` into a scratch cluster with the row counts of the dumped snapshot."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsplane.backup.engines import CopyRef, Restored
from opsplane.backup.policy import AppliedPolicy
from opsplane.config.types import SecretRef
from opsplane.drivers.backup.base import BackupEngineError, BackupOutcome, Progress, Repository, StoredCopy
from opsplane.drivers.backup.copies import ResticCopies
from opsplane.drivers.backup.sealed import SealedCopies

if TYPE_CHECKING:
    from opsplane.config.models import Inventory


class ResticEngine:
    """What the snapshot engines share: the repositories, what they hold, their checks."""

    def __init__(self, policy: AppliedPolicy, repositories: tuple[Repository, ...], *, state_dir: Path,
                 saver: Any) -> None:
        self.policy = policy
        self.repositories = repositories
        self.state_dir = state_dir
        self.saver = saver  # the driver: FileTreeBackup, RedisRdbBackup, SqliteStoreBackup, PgDumpBackup

    @property
    def copies(self) -> ResticCopies | SealedCopies:
        copies: ResticCopies | SealedCopies = self.saver.copies
        return copies

    def prepare(self) -> None:
        for repository in self.repositories:
            self.copies.prepare(repository.name)

    def backup(self, kind: str, progress: Progress) -> BackupOutcome:
        outcome: BackupOutcome = self.saver.backup(progress)
        return outcome

    def held(self, repository: str) -> set[str]:
        return self.copies.held(repository)

    def check(self, repository: str) -> list[str]:
        return self.copies.check(repository)

    @contextmanager
    def markers(self, drill: str, every: float) -> Iterator[Callable[[], int]]:
        """No rows to mark: a snapshot's moment is when it was taken."""
        yield lambda: 0

    @contextmanager
    def restore_scratch(self, copy: CopyRef, scratch: Path, *, at: datetime | None = None,
                        latest: bool = False, drill: str | None = None) -> Iterator[Restored]:
        """Restore `copy` under `scratch` and check it as its driver does (every byte restic or a
        sealed archive restores is authenticated, so a corrupted one fails the restore itself)."""
        if at is not None:
            raise BackupEngineError(f"{self.policy.engine} restores whole snapshots: no point in time")
        work = scratch / f"{self.policy.name}-{copy.label[:12]}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        recorded = BackupOutcome(kind="", started=datetime.min, finished=datetime.min, size_bytes=0,
                                 copies=(), checksum=copy.checksum, facts=copy.facts)
        try:
            problems = self._verify(StoredCopy(copy.repository, copy.label), recorded, work)
            yield Restored(address=str(work), contents={}, checks={"restore": problems})
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def archive_state(self) -> None:
        """Snapshots only: nothing is archived between them."""
        return None

    def expire(self, repository: str, label: str) -> None:
        self.copies.remove(repository, label)

    def _verify(self, copy: StoredCopy, recorded: BackupOutcome, work: Path) -> list[str]:
        problems: list[str] = self.saver.verify(copy, recorded, work)
        return problems

    def restore_into(self, copy: CopyRef, target: Path, *, at: datetime | None, latest: bool) -> str:
        """Restore the snapshot into the directory `target`: what is there afterwards."""
        target.mkdir(parents=True, exist_ok=True)
        stored = StoredCopy(copy.repository, copy.label)
        engine = self.policy.engine
        if engine == "redis-rdb":
            rdb = self.saver.restore_file(stored, target)
            return (f"the RDB file {rdb}; load it with the server stopped: put it in its directory as its "
                    f"dbfilename (or run `redis-server --dir {target} --dbfilename {rdb.name}`)")
        if engine == "sqlite":
            return f"the store's copy {self.saver.restore(stored, target)}"
        if engine == "files":
            places = self.saver.restore(stored, target)
            return f"the files under {target} ({', '.join(str(p) for p in places[:3])})"
        self.copies.restore(stored, target)
        return f"the pg_dump directory {target}; load it with `pg_restore -j 2 -d DATABASE {target}`"

    def restore_over(self, copy: CopyRef, *, at: datetime | None, latest: bool) -> str:
        """File trees only: the saved files written back over their paths."""
        if self.policy.engine != "files":
            raise BackupEngineError(f"{self.policy.engine} backups are not restored over what runs")
        self.copies.restore(StoredCopy(copy.repository, copy.label), "/")
        return f"the files of {self.policy.name} written back over {', '.join(self.policy.settings.paths)}"


class PgDumpEngine(ResticEngine):
    """Dumps are sealed archives, verified by `pg_restore` into a scratch cluster of their own."""

    def _verify(self, copy: StoredCopy, recorded: BackupOutcome, work: Path) -> list[str]:
        from opsplane.drivers.backup.pgdump import PostgresDatabase
        from opsplane.drivers.sandbox.postgres import TemporaryPostgres

        with TemporaryPostgres(work / "pg") as cluster:
            target = PostgresDatabase(cluster.host, cluster.port, self.saver.database.dbname, cluster.user)
            problems: list[str] = self.saver.verify(copy, recorded, target, work_dir=work)
            return problems


def open_restic_engine(inv: Inventory, policy: AppliedPolicy, repositories: tuple[Repository, ...], *,
                       state_dir: Path, environ: Mapping[str, str], base_dir: Path) -> ResticEngine:
    """The restic-kept engine of `policy` (redis-rdb, files, sqlite or pg_dump)."""
    env = dict(environ)
    copies = ResticCopies(repositories, host=inv.platform.name,
                          cache_dir=str(state_dir / "backup" / "restic-cache"))
    work = state_dir / "backup" / "work"
    work.mkdir(parents=True, exist_ok=True)
    name = policy.component or policy.name
    if policy.engine == "redis-rdb":
        from opsplane.drivers.backup.redis_rdb import RedisRdbBackup

        cache = inv.caches[name]
        password = SecretRef(cache.password).resolve(env) if cache.password else None
        saver: Any = RedisRdbBackup(name, cache.host or "127.0.0.1", cache.port or 6379, copies,
                                    password=password, work_dir=work)
    elif policy.engine == "files":
        from opsplane.drivers.backup.files import FileTreeBackup

        saver = FileTreeBackup(name, [p if Path(p).is_absolute() else str(base_dir / p)
                                      for p in policy.settings.paths], copies)
    elif policy.engine == "sqlite":
        from opsplane.drivers.backup.sqlite_store import SqliteStoreBackup
        from opsplane.store.db import default_url, sqlite_file

        path = Path(policy.settings.paths[0]) if policy.settings.paths else sqlite_file(default_url(env))
        if path is None:
            raise BackupEngineError(f"policy {policy.name}: the store is not a SQLite file; give its "
                                    "path in `paths`, or back a PostgreSQL store up as a database")
        saver = SqliteStoreBackup(name, path if path.is_absolute() else base_dir / path, copies,
                                  work_dir=work)
    elif policy.engine == "pg_dump":
        from opsplane.drivers.backup.pgdump import PgDumpBackup, PostgresDatabase

        db = inv.databases[name]
        password = SecretRef(db.password).resolve(env) if db.password else None
        database = PostgresDatabase(db.host or "127.0.0.1", db.port or 5432,
                                    policy.settings.database or db.database, db.user, password)
        sealed = SealedCopies(repositories, jobs=policy.settings.processes, work_dir=work)
        saver = PgDumpBackup(name, database, sealed, jobs=policy.settings.processes, work_dir=work)
        return PgDumpEngine(policy, repositories, state_dir=state_dir, saver=saver)
    else:
        raise BackupEngineError(f"no engine {policy.engine!r}")
    return ResticEngine(policy, repositories, state_dir=state_dir, saver=saver)
