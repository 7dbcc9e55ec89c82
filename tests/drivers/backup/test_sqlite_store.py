"""opsplane's SQLite store copied with SQLite's online backup while another connection
writes to it, kept with restic and restored."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from opsplane.drivers.backup.base import Repository
from opsplane.drivers.backup.copies import ResticCopies, file_sha256
from opsplane.drivers.backup.restic import Restic
from opsplane.drivers.backup.sqlite_store import COPY_NAME, SqliteStoreBackup, integrity_problems
from opsplane.store import Store
from tests.drivers.backup.conftest import CANARY, files_containing


def test_a_store_written_during_the_backup_is_copied_whole_and_consistent(
    tmp_path: Path, local_repo: Repository, make_restic: Callable[[Repository], Restic]
) -> None:
    database = tmp_path / "store" / "opsplane.db"
    Store.open(f"sqlite:///{database}").close()  # the real schema, migrated
    with sqlite3.connect(database) as setup:
        setup.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        setup.executemany("INSERT INTO notes (body) VALUES (?)",
                          [(f"{CANARY} note {n} " + "x" * 200,) for n in range(20_000)])
    setup.close()
    make_restic(local_repo)
    backup = SqliteStoreBackup("opsplane", database,
                               ResticCopies([local_repo], cache_dir=str(tmp_path / "cache")),
                               work_dir=tmp_path)

    stop = threading.Event()
    written = [0]

    def write() -> None:
        writer = sqlite3.connect(database, timeout=30)
        writer.execute("PRAGMA journal_mode=WAL")
        while not stop.is_set():
            writer.execute("INSERT INTO notes (body) VALUES (?)", (f"{CANARY} later",))
            writer.commit()
            written[0] += 1
        writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while written[0] < 50:
            stop.wait(0.01)
        committed_before = 20_000 + written[0]
        outcome = backup.backup()
        written_by_end = written[0]
    finally:
        stop.set()
        thread.join()

    rows = outcome.facts["tables"]["notes"]
    assert committed_before <= rows <= 20_000 + written_by_end
    assert written_by_end > committed_before - 20_000, "nothing was written during the backup"
    assert outcome.facts["tables"]["alembic_version"] == 1
    assert outcome.facts["sqlite_version"] == sqlite3.sqlite_version
    assert outcome.kind == "snapshot" and outcome.size_bytes > 4_000_000

    (copy,) = outcome.copies
    assert backup.verify(copy, outcome, tmp_path / "verify") == []
    restored = backup.restore(copy, tmp_path / "restored")
    assert restored.name == COPY_NAME and file_sha256(restored) == outcome.checksum
    assert integrity_problems(restored) == []
    with sqlite3.connect(restored) as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        first = reader.execute("SELECT body FROM notes WHERE id = 1").fetchone()[0]
    reader.close()
    assert first.startswith(f"{CANARY} note 0 ")
    assert list(tmp_path.glob("opsplane-sqlite-*")) == []
    assert files_containing(Path(local_repo.path), CANARY.encode()) == []


def test_row_counts_unlike_the_recorded_ones_are_reported(
    tmp_path: Path, local_repo: Repository, make_restic: Callable[[Repository], Restic]
) -> None:
    database = tmp_path / "small.db"
    with sqlite3.connect(database) as setup:
        setup.execute("CREATE TABLE t (x)")
        setup.execute("INSERT INTO t VALUES (1)")
    setup.close()
    make_restic(local_repo)
    backup = SqliteStoreBackup("opsplane", database,
                               ResticCopies([local_repo], cache_dir=str(tmp_path / "cache")),
                               work_dir=tmp_path)
    outcome = backup.backup()
    assert outcome.facts["tables"] == {"t": 1}
    wrong = dataclasses.replace(outcome, facts={**outcome.facts, "tables": {"t": 2}})
    problems = backup.verify(outcome.copies[0], wrong, tmp_path / "verify")
    assert problems == ["table t has 1 rows, the backup recorded 2"]
