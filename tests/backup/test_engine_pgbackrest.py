"""A pgBackRest policy from the inventory, end to end against a real cluster archiving into a
local and an S3 repository: `backup run` catalogues a good backup with a copy in each,
verification restores it into a scratch cluster and finds the rows counted when it ended (counted
while pgBackRest finishes, past the backup's stop LSN), and a drill measures RTO and RPO from
marker rows written while it runs."""

from __future__ import annotations

import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from opsplane.backup import service
from opsplane.backup.archive import judge_archive
from opsplane.backup.drill import run_drill
from opsplane.backup.factory import open_engine
from opsplane.backup.flows import BackupRuns, verify
from opsplane.backup.policy import apply
from opsplane.clock import SystemClock
from opsplane.config.loader import loads
from opsplane.drivers.backup.base import BackupEngineError
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.s3 import TemporaryS3
from opsplane.store import Store

pytestmark = pytest.mark.slow

ENVIRON = {"BACKUP_KEY": "engine-test-key-81c2", "S3_KEY": "opsplane", "S3_SECRET": "opsplane-secret"}


def inventory(root: Path, s3: TemporaryS3, cluster: TemporaryPostgres | None,
              bucket: str = "engine-test") -> Any:
    port = cluster.port if cluster else 5432
    data_dir = cluster.data_dir if cluster else "/nonexistent"
    socket_dir = cluster.socket_dir if cluster else "/nonexistent"
    return loads(textwrap.dedent(f"""\
        version: 1
        platform: {{name: shop}}
        runtime: {{state_dir: {root}/state}}
        databases:
          shop-db: {{port: {port}, database: shop}}
        backup:
          encryption_key: env:BACKUP_KEY
          repositories:
            local: {{path: {root}/repo}}
            offsite:
              type: s3
              path: /pgbackrest
              s3: {{endpoint: "{s3.endpoint}", bucket: {bucket}, access_key: env:S3_KEY,
                   secret_key: env:S3_SECRET, ca_file: {s3.ca_file}}}
          policies:
            shop-db: {{data_dir: {data_dir}, socket_dir: {socket_dir}}}
        """))


@dataclass
class Policy:
    cluster: TemporaryPostgres
    inv: Any
    root: Path

    def engine(self) -> Any:
        return open_engine(self.inv, apply(self.inv, "shop-db"), environ=ENVIRON, base_dir=self.root)


@pytest.fixture(scope="module")
def policy(shared_dir: Path, s3: TemporaryS3) -> Iterator[Policy]:
    root = shared_dir / "engine"
    root.mkdir()
    s3.create_bucket("engine-test")
    # the archive_command depends on the stanza and where its configuration is, not on the port
    archiving = open_engine(inventory(root, s3, None), apply(inventory(root, s3, None), "shop-db"),
                            environ=ENVIRON, base_dir=root).driver.archive_settings()
    # a segment a second while rows are written: what a drill finds is then about a second old
    with TemporaryPostgres(root / "pg", settings={**archiving, "archive_timeout": "1s"}) as cluster:
        cluster.execute("CREATE DATABASE shop")
        cluster.execute("CREATE TABLE orders (id serial PRIMARY KEY, total numeric)", database="shop")
        cluster.execute("INSERT INTO orders (total) SELECT g FROM generate_series(1, 5000) g",
                        database="shop")
        yield Policy(cluster, inventory(root, s3, cluster), root)


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@contextmanager
def writing_elsewhere(cluster: TemporaryPostgres) -> Iterator[None]:
    """Rows committed every 20 ms into another database than the one counted while open: the
    WAL moves on, so the counted moment is a position of its own (not the backup's end), and
    the counts themselves stay exact."""
    cluster.execute("CREATE TABLE IF NOT EXISTS elsewhere (at timestamptz DEFAULT clock_timestamp())")
    stop = threading.Event()

    def write() -> None:
        with psycopg.connect(host=str(cluster.socket_dir), port=cluster.port, user=cluster.user,
                             dbname="postgres", autocommit=True) as connection:
            while not stop.wait(0.02):
                connection.execute("INSERT INTO elsewhere DEFAULT VALUES")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join(timeout=10)


def test_a_backup_run_catalogues_a_copy_in_each_repository_and_verifies(
        policy: Policy, store: Store, tmp_path: Path) -> None:
    [(rows,)] = policy.cluster.execute("SELECT count(*) FROM orders", database="shop")
    runs = BackupRuns(store, clock=SystemClock(), holder="test", actor="ana")
    try:
        with writing_elsewhere(policy.cluster):
            result = runs.run(policy.engine(), kind="full", trigger="manual")
    finally:
        runs.close()
    assert result.state == "complete", result.error
    assert result.copies == ("local", "offsite")
    assert result.repository_problems == {"local": [], "offsite": []}
    with store.session() as session:
        row = service.get(session, result.backup_id)
        assert row.facts["contents"] == {"public.orders": rows}
        assert set(row.facts["repositories"]) == {"local", "offsite"}
        # counted as the last backup ended: at or after its stop LSN (and so every earlier one's),
        # which recovery to the counted moment must pass to be consistent. None when the counts were
        # taken before anything else was written: the backup's own end is then the counted moment
        counted = row.facts["counted_at_lsn"]
        for facts in row.facts["repositories"].values():
            assert facts["lsn_stop"] and (counted is None or _lsn(counted) >= _lsn(facts["lsn_stop"])), \
                (counted, facts)
    # written after the backup, so not in what it restores to
    policy.cluster.execute("INSERT INTO orders (total) VALUES (1)", database="shop")
    verified = verify(store, policy.engine(), scratch=policy.root / "scratch", clock=SystemClock(),
                      actor="ana", repository="offsite")
    assert verified.ok, verified.problems
    assert verified.report["contents"] == {"public.orders": rows}
    with store.session() as session:
        assert service.get(session, result.backup_id).state == "verified"


def test_a_drill_measures_rto_and_rpo_from_marker_rows_and_keeps_the_report(
        policy: Policy, tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    try:
        runs = BackupRuns(store, clock=SystemClock(), holder="test", actor="ana")
        try:
            taken = runs.run(policy.engine(), kind="full", trigger="manual", check_after=False)
            assert taken.state == "complete", taken.error
        finally:
            runs.close()
        report = run_drill(store, policy.engine(), scratch=policy.root / "scratch", clock=SystemClock(),
                           actor="ana", repository="local")
        assert report.restored, report.problems
        assert report.markers_written >= 3 and report.newest_marker is not None
        assert report.rto_seconds is not None and 0 < report.rto_seconds < 120
        assert report.rpo_seconds is not None and report.rpo_seconds < 10  # archive_timeout 1s
        assert report.rto_met and report.rpo_met  # targets 30 min and 15 min
        with store.session() as session:
            [kept] = service.restores(session, policy="shop-db", purpose="drill")
            assert kept.state == "succeeded" and kept.report["rpo_seconds"] == round(report.rpo_seconds, 2)
            assert "| RPO |" in kept.report["markdown"]
        [(left,)] = policy.cluster.execute("SELECT count(*) FROM opsplane.drill_markers", database="shop")
        assert left == 0  # the drill's rows are removed from production
    finally:
        store.close()


def test_a_failing_archive_command_is_seen_as_point_in_time_recovery_broken(
        shared_dir: Path, s3: TemporaryS3) -> None:
    root = shared_dir / "broken-archive"
    root.mkdir()
    with TemporaryPostgres(root / "pg", settings={"archive_mode": "on", "wal_level": "replica",
                                                  "archive_command": "/bin/false"}) as cluster:
        cluster.execute("CREATE DATABASE shop")
        cluster.execute("CREATE TABLE t AS SELECT 1 AS x", database="shop")
        cluster.execute("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while not cluster.execute("SELECT failed_count FROM pg_stat_archiver")[0][0]:
            assert time.monotonic() < deadline, "the archiver never tried"
            time.sleep(0.1)
        inv = inventory(root, s3, cluster)
        state = open_engine(inv, apply(inv, "shop-db"), environ=ENVIRON, base_dir=root).archive_state()
    assert state.failing is not None and "archive_command failed for segment" in state.failing
    now = datetime.now(UTC)
    broken = judge_archive(state, complete_at={}, now=now)
    assert set(broken) == {"local", "offsite"}


class _Driver:
    """Stands in for the engine's PgBackRest: each backup calls `on_stopping` and `on_stopped`
    (unless `silent`) and then fails when told to; `said` lists what happened in order."""

    def __init__(self, *, silent: bool = False, fail: bool = False) -> None:
        self.silent, self.fail = silent, fail
        self.said: list[str] = []
        self.counting = threading.Event()  # set by the stand-in count as it begins

    def backup(self, kind: str, *, repo: str, progress: Any, on_stopping: Any = None,
               on_stopped: Any = None) -> Any:
        from opsplane.drivers.backup.base import BackupOutcome, StoredCopy

        self.said.append(f"backup {repo}" + (" (told)" if on_stopped else ""))
        if on_stopping is not None and not self.silent:
            on_stopping()
            # pgBackRest goes on (the archive wait, the manifest) while the counting runs
            assert self.counting.wait(10), "the counting did not start"
        if on_stopped is not None and not self.silent:
            on_stopped("0/3000100")
        self.said.append(f"backed up {repo}")
        if self.fail:
            raise BackupEngineError(f"pgBackRest full backup of {repo} failed")
        return BackupOutcome(kind="full", started=datetime.now(UTC), finished=datetime.now(UTC),
                             size_bytes=1, copies=(StoredCopy(repo, "L", 1),), checksum="c",
                             facts={"lsn_stop": "0/3000100"})


def _stand_in(policy: Policy, driver: _Driver, count: Any) -> Any:
    engine = policy.engine()
    engine.driver = driver

    def counting(stop: threading.Event | None = None) -> Any:
        driver.said.append("count")
        driver.counting.set()
        return count(stop)

    engine._count = counting
    return engine


def test_the_rows_are_counted_while_the_last_backup_finishes(policy: Policy) -> None:
    driver = _Driver()
    engine = _stand_in(policy, driver, lambda _stop: ("0/3000200", "0/3000200", {"public.orders": 3}))
    outcome = engine.backup("full", lambda *_: None)
    # only the last repository's backup starts the counting, before it has finished
    assert driver.said == ["backup local", "backed up local", "backup offsite (told)", "count",
                           "backed up offsite"]
    assert outcome.facts["counted_at_lsn"] == "0/3000200"
    assert outcome.facts["contents"] == {"public.orders": 3}


def test_without_the_stop_line_the_rows_are_counted_after_the_backup(policy: Policy) -> None:
    driver = _Driver(silent=True)
    engine = _stand_in(policy, driver, lambda _stop: ("0/3000200", None, {"public.orders": 3}))
    outcome = engine.backup("full", lambda *_: None)
    assert driver.said[-2:] == ["backed up offsite", "count"]
    assert outcome.facts["counted_at_lsn"] is None


def test_a_snapshot_taken_before_the_backups_end_is_counted_again(policy: Policy) -> None:
    # the counting starts as pg_backup_stop is called; had its snapshot come before the backup's
    # end was written (0/3000100), recovery could not stop there: the rows are counted again
    driver = _Driver()
    answers = iter([("0/3000080", "0/3000080", {"public.orders": 2}),
                    ("0/3000300", "0/3000300", {"public.orders": 3})])
    engine = _stand_in(policy, driver, lambda _stop: next(answers))
    outcome = engine.backup("full", lambda *_: None)
    assert driver.said.count("count") == 2 and driver.said[-1] == "count"
    assert outcome.facts["counted_at_lsn"] == "0/3000300"
    assert outcome.facts["contents"] == {"public.orders": 3}


def test_a_failed_backup_is_reported_as_such_whatever_the_counting_did(policy: Policy) -> None:
    finished = threading.Event()

    def count(stop: threading.Event) -> Any:
        stop.wait(5)  # as the archive wait does: it ends once the backup has failed
        finished.set()
        raise BackupEngineError("counting the rows of shop after the backup: gone")

    engine = _stand_in(policy, _Driver(fail=True), count)
    with pytest.raises(BackupEngineError, match="full backup of local failed"):
        engine.backup("full", lambda *_: None)
    engine = _stand_in(policy, _Driver(fail=True), count)
    engine.repositories = engine.repositories[:1]  # the counting starts in this (last) one
    started = time.monotonic()
    with pytest.raises(BackupEngineError, match="full backup of local failed"):
        engine.backup("full", lambda *_: None)
    assert finished.is_set() and time.monotonic() - started < 4  # waited for, not for long


def test_a_failed_count_fails_the_backup(policy: Policy) -> None:
    def count(_stop: threading.Event) -> Any:
        raise BackupEngineError("counting the rows of shop after the backup: connection refused")

    engine = _stand_in(policy, _Driver(), count)
    with pytest.raises(BackupEngineError, match="counting the rows of shop"):
        engine.backup("full", lambda *_: None)
