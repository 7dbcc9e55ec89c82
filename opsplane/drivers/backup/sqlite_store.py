"""opsplane's own SQLite store, copied while it runs and kept with restic.

SQLite's online backup API (`sqlite3.Connection.backup`) copies the database page by page
through SQLite itself, so the copy is a consistent database as of one moment, whatever other
connections are writing: done in one step, it reads a single snapshot (in WAL mode, which
the store uses, writers carry on meanwhile). Copying the file with `cp` could catch a
half-written page or miss what still sits in the write-ahead log. The copy is checked
(`PRAGMA integrity_check`), made self-contained (journal_mode DELETE) and saved with restic.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsplane.drivers.backup.base import (
    BackupEngineError,
    BackupOutcome,
    Progress,
    StoredCopy,
    no_progress,
)
from opsplane.drivers.backup.copies import ResticCopies, file_sha256

ENGINE = "sqlite"
COPY_NAME = "store.sqlite3"
_BUSY_TIMEOUT_S = 30.0


class SqliteStoreBackup:
    """Backups of the SQLite database `database` (opsplane's store) of `component`.

    `work_dir` holds the copy between taking and saving it (the system's temporary
    directory when None)."""

    def __init__(
        self,
        component: str,
        database: str | Path,
        copies: ResticCopies,
        *,
        work_dir: str | Path | None = None,
    ) -> None:
        self.component = component
        self.database = Path(database)
        self.copies = copies
        self.work_dir = Path(work_dir) if work_dir is not None else None

    def backup(self, progress: Progress = no_progress) -> BackupOutcome:
        """Copy the store, check the copy and save it to every repository (tags: component,
        "sqlite").

        Facts: `tables`, each table's row count in the copy; `sqlite_version`; `page_size`
        and `page_count` of the copy. `checksum` is the SHA-256 of the saved copy."""
        if not self.database.is_file():
            raise BackupEngineError(f"SQLite backup of {self.component}: there is no "
                                    f"database at {self.database}")
        started = datetime.now(UTC)
        scratch = Path(tempfile.mkdtemp(prefix="opsplane-sqlite-", dir=self.work_dir))
        try:
            copy = scratch / COPY_NAME
            progress("copy", None)
            self.copy_to(copy)
            facts = inspect(copy)
            checksum = file_sha256(copy)
            size = copy.stat().st_size
            stored, _ = self.copies.save_paths(
                [COPY_NAME], cwd=scratch, tags=[self.component, ENGINE], progress=progress)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return BackupOutcome(kind="snapshot", started=started, finished=datetime.now(UTC),
                             size_bytes=size, copies=stored, checksum=checksum, facts=facts)

    def copy_to(self, target: Path) -> None:
        """Write a consistent, checked, self-contained copy of the store to `target`."""
        what = f"SQLite backup of {self.component} ({self.database})"
        try:
            source = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True,
                                     timeout=_BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise BackupEngineError(f"{what}: cannot open the database: {exc}") from None
        try:
            with sqlite3.connect(target) as copy:
                # pages=-1: one step, one snapshot (in steps, another connection's write
                # would make SQLite start over).
                source.backup(copy, pages=-1)
                copy.execute("PRAGMA journal_mode=DELETE").fetchall()
            copy.close()
        except sqlite3.Error as exc:
            raise BackupEngineError(f"{what}: the online backup failed: {exc}") from None
        finally:
            source.close()
        problems = integrity_problems(target)
        if problems:
            raise BackupEngineError(f"{what}: the copy fails integrity_check: "
                                    f"{'; '.join(problems[:5])}")

    def restore(self, copy: StoredCopy, target_dir: str | Path) -> Path:
        """Write the copy's database file into `target_dir`; its path. The live store is
        not touched: putting the file in its place is the caller's decision."""
        return self.copies.restore_file(copy, target_dir, COPY_NAME,
                                        what=f"SQLite backup of {self.component}")

    def verify(self, copy: StoredCopy, outcome: BackupOutcome, target_dir: str | Path) -> list[str]:
        """Restore the copy into `target_dir` and check it: the same SHA-256, integrity_check
        passes, the same row counts as recorded. The problems found; none when all agree."""
        path = self.restore(copy, target_dir)
        problems = []
        checksum = file_sha256(path)
        if outcome.checksum and checksum != outcome.checksum:
            problems.append(f"the restored copy's SHA-256 is {checksum}, the backup's was "
                            f"{outcome.checksum}")
        problems += integrity_problems(path)
        if not problems:
            found = inspect(path)["tables"]
            recorded = outcome.facts.get("tables", {})
            for table in sorted(set(found) | set(recorded)):
                if found.get(table) != recorded.get(table):
                    problems.append(f"table {table} has {found.get(table)} rows, the backup "
                                    f"recorded {recorded.get(table)}")
        return problems


def integrity_problems(path: str | Path) -> list[str]:
    """What `PRAGMA integrity_check` reports about the database at `path`; empty when "ok"."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
        connection.close()
    except sqlite3.Error as exc:
        return [f"cannot be read as a SQLite database: {exc}"]
    answers = [str(row[0]) for row in rows]
    return [] if answers == ["ok"] else answers


def inspect(path: str | Path) -> dict[str, Any]:
    """Facts of the database at `path`: `tables` (name -> row count), `sqlite_version`,
    `page_size`, `page_count`."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        names = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        tables = {name: int(connection.execute(
            f'SELECT count(*) FROM "{name.replace(chr(34), chr(34) * 2)}"').fetchone()[0])
            for name in names}
        facts: dict[str, Any] = {
            "tables": tables,
            "sqlite_version": sqlite3.sqlite_version,
            "page_size": int(connection.execute("PRAGMA page_size").fetchone()[0]),
            "page_count": int(connection.execute("PRAGMA page_count").fetchone()[0]),
        }
    connection.close()
    return facts
