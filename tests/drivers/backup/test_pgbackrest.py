"""The pgBackRest driver against the real things: a PostgreSQL cluster archiving through the
driver's archive_command into a local repository and an S3 one (moto over TLS), both
encrypted; backups, info, point-in-time restore into a scratch cluster, verify, expire."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opsplane.drivers.backup.base import BackupOutcome
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.s3 import TemporaryS3
from tests.drivers.backup.conftest import Stack

pytestmark = pytest.mark.slow

CANARY = "opsplane-canary-7f3a"


@dataclass
class Backed:
    stack: Stack
    local: BackupOutcome
    offsite: BackupOutcome
    progress: list[tuple[str, float | None]]
    stopped: list[str]  # what on_stopping and on_stopped heard during the local backup, in order


@pytest.fixture(scope="module")
def backed(make_stack: Any) -> Iterator[Backed]:
    """A cluster holding the canary, its stanza checked, and a full backup in each repository."""
    stack = make_stack("main")
    stack.cluster.execute("create table secrets (value text)")
    stack.cluster.execute("insert into secrets values (%s)", (CANARY,))
    stack.driver.check()
    progress: list[tuple[str, float | None]] = []
    stopped: list[str] = []
    local = stack.driver.backup("full", repo="local", progress=lambda p, f: progress.append((p, f)),
                                on_stopping=lambda: stopped.append("stopping"), on_stopped=stopped.append)
    offsite = stack.driver.backup("full", repo=2)
    yield Backed(stack, local, offsite, progress, stopped)


def test_full_backups_in_both_repositories_are_listed(backed: Backed) -> None:
    local, offsite = backed.local, backed.offsite
    assert [copy.repository for copy in local.copies] == ["repo1 (local)"]
    assert [copy.repository for copy in offsite.copies] == ["repo2 (offsite)"]
    fractions = [fraction for phase, fraction in backed.progress if phase == "backup"]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any(0.0 < f < 1.0 for f in fractions if f is not None)
    info = backed.stack.driver.info()
    assert [status.ok for status in info.repos] == [True, True]
    for outcome, repo in ((local, 1), (offsite, 2)):
        label = outcome.copies[0].label
        listed = info.backup(label, repo)
        assert listed is not None and listed.kind == "full" and listed.prior is None
        assert outcome.size_bytes == listed.size_bytes > 1_000_000
        assert 0 < (outcome.copies[0].stored_bytes or 0) < outcome.size_bytes
        assert listed.wal_start and listed.wal_stop and listed.wal_start <= listed.wal_stop
        assert outcome.facts["lsn_start"] and outcome.facts["lsn_stop"]
        assert outcome.facts["wal_start"] == listed.wal_start
        assert outcome.started <= outcome.finished
        assert outcome.checksum and len(outcome.checksum) == 64
    # told once as pg_backup_stop was called, once as it returned, the stop LSN `info` records
    assert backed.stopped == ["stopping", local.facts["lsn_stop"]]
    ranges = {archive.repo: archive for archive in info.archives}
    assert set(ranges) == {1, 2}
    assert ranges[1].wal_min and ranges[1].wal_max and ranges[1].wal_min <= ranges[1].wal_max


def test_create_stanza_again_changes_nothing(backed: Backed) -> None:
    before = backed.stack.driver.info()
    backed.stack.driver.create_stanza()
    assert [b.label for b in backed.stack.driver.info().backups] == [b.label for b in before.backups]


def test_an_incremental_names_its_prior_and_can_be_expired(backed: Backed) -> None:
    driver = backed.stack.driver
    backed.stack.cluster.execute("insert into secrets values ('more')")
    incr = driver.backup("incr", repo=1)
    label = incr.copies[0].label
    assert incr.kind == "incr"
    assert incr.facts["prior"] == backed.local.copies[0].label
    assert driver.info().backup(label, 1) is not None
    driver.expire(label, repo="local")
    info = driver.info()
    assert info.backup(label, 1) is None
    assert info.backup(backed.local.copies[0].label, 1) is not None


def test_point_in_time_restore_from_the_offsite_copy(backed: Backed, shared_dir: Path) -> None:
    cluster, driver = backed.stack.cluster, backed.stack.driver
    cluster.execute("create table events (name text)")
    cluster.execute("insert into events values ('first')")
    # The target is taken from the server's clock, between the two commits.
    target = cluster.execute("select pg_sleep(0.05), clock_timestamp()")[0][1]
    cluster.execute("select pg_sleep(0.05)")
    cluster.execute("insert into events values ('second')")
    driver.check()  # switches WAL and waits until the segment is in both repositories
    restored = driver.restore(shared_dir / "pitr" / "data", repo="offsite", target_time=target)
    assert restored.recovery == "time"
    with TemporaryPostgres.from_data_dir(restored.data_dir, shared_dir / "pitr" / "run",
                                         settings={"archive_mode": "off"}) as scratch:
        scratch.wait_writable()
        assert scratch.port != cluster.port
        assert scratch.execute("select name from events order by name") == [("first",)]
        assert scratch.execute("show archive_mode") == [("off",)]
        assert scratch.execute("select value from secrets where value = %s", (CANARY,))
    assert not restored.data_dir.joinpath("postmaster.pid").exists()


def test_restore_of_a_backup_to_its_consistency_point(backed: Backed, shared_dir: Path) -> None:
    driver = backed.stack.driver
    label = backed.local.copies[0].label
    restored = driver.restore(shared_dir / "immediate", repo=1, label=label, immediate=True)
    with TemporaryPostgres.from_data_dir(restored.data_dir, shared_dir / "immediate-run",
                                         settings={"archive_mode": "off"}) as scratch:
        scratch.wait_writable()
        assert scratch.execute("select count(*) from secrets") == [(1,)]  # before 'more'
        assert scratch.execute("select to_regclass('events')") == [(None,)]


def test_restore_refuses_a_directory_in_use(backed: Backed, shared_dir: Path) -> None:
    from opsplane.drivers.backup.base import BackupEngineError

    driver = backed.stack.driver
    with pytest.raises(BackupEngineError, match="needs delta=True"):
        driver.restore(backed.stack.cluster.data_dir, repo=1)
    busy = shared_dir / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    with pytest.raises(BackupEngineError, match="not empty"):
        driver.restore(busy, repo=1)


def test_nothing_readable_in_either_repository(backed: Backed, s3: TemporaryS3) -> None:
    canary = CANARY.encode()
    backed.stack.driver.check()  # the WAL with the canary is archived too
    backed.stack.cluster.execute("checkpoint")
    in_data = [p for p in backed.stack.cluster.data_dir.rglob("*")
               if p.is_file() and canary in p.read_bytes()]
    assert in_data, "the canary should be readable in the cluster's own files"
    files = [p for p in backed.stack.local_dir.rglob("*") if p.is_file()]
    assert len(files) > 10
    assert [p for p in files if canary in p.read_bytes()] == []
    # Every file of the repository is pgBackRest's encrypted format (OpenSSL's salted header).
    assert [p for p in files if p.stat().st_size and not p.read_bytes().startswith(b"Salted__")] == []
    client = s3.client()
    try:
        keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=backed.stack.bucket) for item in page.get("Contents", [])]
        assert len(keys) > 5
        for key in keys:
            body = client.get_object(Bucket=backed.stack.bucket, Key=key)["Body"].read()
            assert canary not in body, key
            assert not body or body.startswith(b"Salted__"), key
    finally:
        client.close()


def test_verify_finds_a_flipped_byte(backed: Backed) -> None:
    driver = backed.stack.driver
    assert driver.verify("local").problems == ()
    assert driver.verify("offsite").ok
    label = backed.local.copies[0].label
    files = [p for p in (backed.stack.local_dir / "backup" / "main" / label / "pg_data").rglob("*")
             if p.is_file()]
    victim = max(files, key=lambda p: p.stat().st_size)
    original = victim.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x01
    victim.write_bytes(bytes(damaged))
    try:
        report = driver.verify(1)
    finally:
        victim.write_bytes(original)
    assert not report.ok and report.status == "error"
    relative = victim.relative_to(backed.stack.local_dir / "backup" / "main")
    assert any(str(relative) in problem for problem in report.problems), report.problems
    assert any(label in problem for problem in report.problems)
    assert driver.verify(1).ok
