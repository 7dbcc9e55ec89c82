"""pg_dump of a busy database kept as sealed archives, restored with pg_restore on a scratch cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsplane.drivers.backup.base import BackupEngineError, Repository
from opsplane.drivers.backup.pgdump import PgDumpBackup, PostgresDatabase
from opsplane.drivers.backup.sealed import SealedCopies
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.s3 import TemporaryS3
from tests.drivers.backup.conftest import CANARY, bucket_objects_containing, files_containing
from tests.support.passwords import PG_PASSWORD


@pytest.fixture
def source(tmp_path: Path) -> Iterator[TemporaryPostgres]:
    with TemporaryPostgres(tmp_path / "source", password=PG_PASSWORD) as cluster:
        cluster.execute("CREATE DATABASE shop")
        cluster.execute("CREATE SCHEMA sales", database="shop")
        cluster.execute("CREATE TABLE sales.customers (id int PRIMARY KEY, name text NOT NULL)",
                        database="shop")
        cluster.execute("INSERT INTO sales.customers SELECT n, 'customer ' || n "
                        "FROM generate_series(1, 3000) n", database="shop")
        cluster.execute("CREATE TABLE orders (id bigserial PRIMARY KEY, customer int "
                        "REFERENCES sales.customers, note text)", database="shop")
        cluster.execute("INSERT INTO orders (customer, note) SELECT 1 + n %% 3000, %s || n "
                        "FROM generate_series(1, 60000) n", (f"{CANARY} order ",),
                        database="shop")
        yield cluster


def _database(cluster: TemporaryPostgres, name: str) -> PostgresDatabase:
    return PostgresDatabase(cluster.host, cluster.port, name, cluster.user, PG_PASSWORD)


def test_a_dump_taken_while_rows_arrive_restores_with_the_recorded_counts(
    tmp_path: Path, source: TemporaryPostgres, local_repo: Repository, s3_repo: Repository,
    s3_store: TemporaryS3,
) -> None:
    backup = PgDumpBackup("shop-db", _database(source, "shop"),
                          SealedCopies([s3_repo, local_repo], work_dir=tmp_path),
                          jobs=2, work_dir=tmp_path)
    stop = threading.Event()
    inserted = [0]

    def insert() -> None:
        with source.connect("shop") as connection:
            while not stop.is_set():
                connection.execute("INSERT INTO orders (customer, note) VALUES (1, 'late')")
                inserted[0] += 1

    writer = threading.Thread(target=insert)
    writer.start()
    try:
        while inserted[0] < 20:
            stop.wait(0.01)
        outcome = backup.backup()
    finally:
        stop.set()
        writer.join()

    facts = outcome.facts
    assert set(facts["tables"]) == {"public.orders", "sales.customers"}
    assert facts["tables"]["sales.customers"] == 3000
    assert 60_020 <= facts["tables"]["public.orders"] < 60_000 + inserted[0]
    assert facts["server_version_num"] // 10000 == facts["pg_dump_version"] >= 15
    assert facts["database"] == "shop" and facts["format"] == "directory"
    assert outcome.kind == "dump" and outcome.size_bytes > 2_000_000
    local, copy = outcome.copies  # the offsite copy is the one restored below
    assert (local.repository, copy.repository) == ("local", "offsite")
    for stored in outcome.copies:
        assert backup.copies.held(stored.repository) == {stored.label}
        assert backup.copies.check(stored.repository) == []
    assert list(tmp_path.glob("opsplane-pg*")) == []  # the dump and the restore dirs are gone
    assert files_containing(Path(local_repo.path), CANARY.encode()) == []
    assert s3_repo.s3 is not None
    assert bucket_objects_containing(s3_store, s3_repo.s3.bucket, CANARY.encode()) == []

    with TemporaryPostgres(tmp_path / "scratch", password=PG_PASSWORD) as scratch:
        target = _database(scratch, "shop_restored")
        assert backup.verify(copy, outcome, target, work_dir=tmp_path) == []
        assert scratch.execute("SELECT note FROM orders WHERE id = 7",
                               database="shop_restored") == [(f"{CANARY} order 7",)]
        # the dump comes back as pg_dump wrote it, for an operator's own pg_restore
        written = {entry.path for entry in backup.copies.restore(copy, tmp_path / "dump-again")}
        assert "toc.dat" in written and written == {
            p.relative_to(tmp_path / "dump-again").as_posix() for p in (tmp_path / "dump-again").rglob("*")}
        with pytest.raises(BackupEngineError, match="it exists already"):
            backup.restore(copy, target, work_dir=tmp_path)
    assert list(tmp_path.glob("opsplane-pg*")) == []


def test_a_wrong_password_is_named_without_it(tmp_path: Path, source: TemporaryPostgres,
                                              local_repo: Repository) -> None:
    database = PostgresDatabase(source.host, source.port, "shop", source.user, "wrong-pg-pass-8")
    backup = PgDumpBackup("shop-db", database, SealedCopies([local_repo]), work_dir=tmp_path)
    with pytest.raises(BackupEngineError) as caught:
        backup.backup()
    message = str(caught.value)
    assert f"pg_dump of database shop on 127.0.0.1:{source.port}: cannot connect" in message
    assert "password authentication failed" in message and "wrong-pg-pass-8" not in message
