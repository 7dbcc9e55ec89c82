"""Restores of a pgBackRest policy against a real cluster archiving into a local and an S3
repository: to a moment between two commits (exactly the first comes back), over production
only with --force and the name typed back (refused without, and nothing changes), a dry run that
touches nothing, and a time before the oldest backup refused by name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsplane.backup import service
from opsplane.backup.factory import open_engine
from opsplane.backup.flows import BackupRuns
from opsplane.backup.policy import apply
from opsplane.backup.restore import plan_restore, run_restore
from opsplane.clock import SystemClock
from opsplane.drivers.sandbox.postgres import TemporaryPostgres, find_postgres_bindir
from opsplane.drivers.sandbox.s3 import TemporaryS3
from opsplane.store import Store
from tests.backup.test_engine_pgbackrest import ENVIRON, inventory

pytestmark = pytest.mark.slow


@dataclass
class Production:
    cluster: TemporaryPostgres
    inv: Any
    root: Path
    store: Store
    backup_id: int

    def engine(self) -> Any:
        return open_engine(self.inv, apply(self.inv, "shop-db"), environ=ENVIRON, base_dir=self.root)

    def rows(self) -> list[str]:
        found = self.cluster.execute("SELECT note FROM notes ORDER BY id", database="shop")
        return [row[0] for row in found]

    def opsplane(self, *args: str, code: int) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "OPSPLANE_DATABASE_URL": self.store.url, "COLUMNS": "200",
               **ENVIRON}
        argv = [sys.executable, "-m", "opsplane", "-c", str(self.root / "opsplane.yaml"), *args]
        ran = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=self.root, timeout=300)
        assert ran.returncode == code, (ran.stdout, ran.stderr)
        assert "Traceback" not in ran.stderr
        return ran


def archived(cluster: TemporaryPostgres) -> None:
    """Switch WAL and wait until the segment holding everything so far is in the archive."""
    [(segment,)] = cluster.execute("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
    cluster.execute("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        [(last,)] = cluster.execute("SELECT last_archived_wal FROM pg_stat_archiver")
        if last and last >= segment:
            return
        time.sleep(0.1)
    raise AssertionError("WAL was not archived within 60 s")


@pytest.fixture(scope="module")
def production(shared_dir: Path, s3: TemporaryS3) -> Iterator[Production]:
    root = shared_dir / "restore"
    root.mkdir()
    s3.create_bucket("restore-test")
    settings = open_engine(inventory(root, s3, None, "restore-test"),
                           apply(inventory(root, s3, None, "restore-test"), "shop-db"),
                           environ=ENVIRON, base_dir=root).driver.archive_settings()
    cluster = TemporaryPostgres(root / "pg", settings=settings).start()
    store = Store.open(f"sqlite:///{root}/opsplane.db")
    try:
        cluster.execute("CREATE DATABASE shop")
        cluster.execute("CREATE TABLE notes (id serial PRIMARY KEY, note text)", database="shop")
        cluster.execute("INSERT INTO notes (note) VALUES ('before')", database="shop")
        inv = inventory(root, s3, cluster, "restore-test")
        (root / "opsplane.yaml").write_text(yaml.safe_dump(inv.model_dump(mode="json", exclude_unset=True,
                                                                          by_alias=True)))
        runs = BackupRuns(store, clock=SystemClock(), holder="test", actor="test")
        try:
            result = runs.run(open_engine(inv, apply(inv, "shop-db"), environ=ENVIRON, base_dir=root),
                              kind="full", trigger="manual", check_after=False)
        finally:
            runs.close()
        assert result.state == "complete", result.error
        yield Production(cluster, inv, root, store, result.backup_id)
    finally:
        store.close()
        cluster.stop()
        data = root / "pg" / "postgres" / "data"
        if (data / "postmaster.pid").exists():  # restarted by a restore over it, outside the sandbox
            subprocess.run(["runuser", "-u", "postgres", "--", str(find_postgres_bindir() / "pg_ctl"),
                            "stop", "-D", str(data), "-m", "immediate"], check=False, capture_output=True)


def test_a_restore_to_a_moment_between_two_commits_returns_exactly_the_first(
        production: Production) -> None:
    cluster = production.cluster
    cluster.execute("INSERT INTO notes (note) VALUES ('first')", database="shop")
    [(between,)] = cluster.execute("SELECT clock_timestamp()")
    time.sleep(0.2)
    cluster.execute("INSERT INTO notes (note) VALUES ('second')", database="shop")
    archived(cluster)
    target = production.root / "pitr"
    with production.store.session() as session:
        plan = plan_restore(session, apply(production.inv, "shop-db"), latest=False, at=between,
                            backup_id=None, to=str(target), repository="offsite", force=False,
                            now=datetime.now(between.tzinfo))
    done = run_restore(production.store, production.engine(), plan, scratch=production.root / "scratch",
                       clock=SystemClock(), actor="test")
    assert done.ok, done.outcome
    target.chmod(0o700)
    with TemporaryPostgres.from_data_dir(target, production.root / "pitr-run") as copy:
        copy.wait_writable()
        assert [row[0] for row in copy.execute("SELECT note FROM notes ORDER BY id", database="shop")] == [
            "before", "first"]


def test_a_dry_run_prints_the_plan_and_touches_nothing(production: Production) -> None:
    before = production.rows()
    ran = production.opsplane("restore", "shop-db", "--latest", "--dry-run", code=0)
    assert "stop the cluster" in ran.stdout and "needs --force" in ran.stdout
    assert production.rows() == before and production.cluster.running


def test_a_restore_over_production_without_force_is_refused_and_changes_nothing(
        production: Production) -> None:
    before = production.rows()
    ran = production.opsplane("restore", "shop-db", "--backup", str(production.backup_id), code=3)
    assert "replaces what it holds now: add --force" in ran.stderr
    ran = production.opsplane("restore", "shop-db", "--at", "2000-01-01T00:00:00Z", "--to",
                              str(production.root / "old"), code=3)
    assert "before the oldest backup" in ran.stderr
    ran = production.opsplane("restore", "shop-db", "--latest", "--force", "--confirm", "shop", code=3)
    assert "not confirmed: expected 'shop-db'" in ran.stderr
    assert production.rows() == before and production.cluster.running
    assert not (production.root / "old").exists()


def test_a_forced_restore_over_production_brings_back_the_backup(production: Production) -> None:
    production.cluster.execute("INSERT INTO notes (note) VALUES ('after the backup')", database="shop")
    ran = production.opsplane("restore", "shop-db", "--backup", str(production.backup_id), "--force",
                              "--confirm", "shop-db", code=0)
    assert "restored in place" in ran.stdout
    with production.engine()._connect() as connection:
        rows = [row[0] for row in connection.execute("SELECT note FROM notes ORDER BY id")]
        assert rows == ["before"]
        [(recovering,)] = connection.execute("SELECT pg_is_in_recovery()").fetchall()
        assert not recovering


def test_a_backup_killed_half_way_is_never_good_and_the_next_one_succeeds(production: Production) -> None:
    production.cluster.execute("CREATE TABLE IF NOT EXISTS bulk AS SELECT g AS id, md5(g::text) AS pad "
                               "FROM generate_series(1, 1500000) g", database="shop")
    env = {"PATH": os.environ["PATH"], "OPSPLANE_DATABASE_URL": production.store.url, **ENVIRON}
    argv = [sys.executable, "-m", "opsplane", "-c", str(production.root / "opsplane.yaml"),
            "backup", "run", "shop-db", "--no-check"]
    with production.store.session() as session:
        before = {row.id for row in service.get_all(session, policy="shop-db")}
    process = subprocess.Popen(argv, env=env, cwd=production.root, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline and process.poll() is None, "the backup never started"
            with production.store.session() as session:
                running = [row for row in service.get_all(session, policy="shop-db")
                           if row.id not in before and row.state == "running"]
            if running and _pgbackrest_copying(production.root):
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    cut_off = running[0].id
    with production.store.session() as session:
        assert cut_off not in [row.id for row in service.good(session, policy="shop-db")]
    production.opsplane("backup", "run", "shop-db", "--no-check", code=0)
    with production.store.session() as session:
        # its claim lapses 30 s after the kill: a look after that fails it
        swept = service.sweep_cut_off(session, now=datetime.now(UTC) + timedelta(seconds=31))
        assert [row.id for row in swept] == [cut_off]
        assert service.get(session, cut_off).state == "failed"
        newest = service.good(session, policy="shop-db", limit=1)[0]
        assert newest.id > cut_off and newest.state == "complete"


def _pgbackrest_copying(root: Path) -> bool:
    """Whether a pgbackrest backup of this test's stanza is running now."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        line = process.info["cmdline"] or []
        if any(str(root) in word for word in line) and "backup" in line and line[0].endswith("pgbackrest"):
            return True
    return False
