"""Policies kept with restic, end to end through the flows against real servers and a local and
an S3 repository: a Redis snapshot, opsplane's own SQLite store and a pg_dump are each catalogued
with a copy in both repositories and verified by restoring them from each; a flipped byte in the
local repository fails the verification of what it holds."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsplane.backup import service
from opsplane.backup.factory import open_engine
from opsplane.backup.flows import BackupRuns, verify
from opsplane.backup.policy import apply
from opsplane.clock import SystemClock
from opsplane.config.loader import loads
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.drivers.sandbox.s3 import TemporaryS3
from opsplane.store import Store

pytestmark = pytest.mark.slow

ENVIRON = {"BACKUP_KEY": "restic-engine-key-2d7e", "S3_KEY": "opsplane", "S3_SECRET": "opsplane-secret"}


def inventory(root: Path, s3: TemporaryS3, components: str, policy: str) -> Any:
    bucket = f"restic-{root.name[-20:].lower().replace('_', '-')}"
    s3.create_bucket(bucket)
    return loads(textwrap.dedent(f"""\
        version: 1
        platform: {{name: shop}}
        runtime: {{state_dir: {root}/state}}
        {components}
        backup:
          encryption_key: env:BACKUP_KEY
          repositories:
            local: {{path: {root}/repo}}
            offsite:
              type: s3
              s3: {{endpoint: "{s3.endpoint}", bucket: {bucket}, access_key: env:S3_KEY,
                   secret_key: env:S3_SECRET, ca_file: {s3.ca_file}}}
          policies:
            {policy}
        """))


def backed_up_and_verified(inv: Any, name: str, store: Store, root: Path) -> tuple[Any, int]:
    engine = open_engine(inv, apply(inv, name), environ=ENVIRON, base_dir=root)
    runs = BackupRuns(store, clock=SystemClock(), holder="test", actor="ana")
    try:
        result = runs.run(engine, kind="full", trigger="manual")
    finally:
        runs.close()
    assert result.state == "complete", result.error
    assert result.copies == ("local", "offsite")
    assert result.repository_problems == {"local": [], "offsite": []}
    for repository in ("local", "offsite"):
        checked = verify(store, engine, scratch=root / "scratch", clock=SystemClock(), actor="ana",
                         repository=repository)
        assert checked.ok, checked.problems
    return engine, result.backup_id


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    yield opened
    opened.close()


def test_a_redis_snapshot_is_verified_from_both_repositories_and_a_flipped_byte_is_found(
        tmp_path: Path, s3: TemporaryS3, store: Store) -> None:
    with TemporaryRedis(tmp_path / "redis", extra_args=["--repl-diskless-sync-delay", "0"]) as redis:
        client = redis.client()
        for i in range(300):
            client.set(f"cart:{i}", f"{i}" * 40)
        client.close()
        inv = inventory(tmp_path, s3, f"caches: {{sessions: {{port: {redis.port}}}}}", "sessions: {}")
        engine, backup_id = backed_up_and_verified(inv, "sessions", store, tmp_path)
    with store.session() as session:
        row = service.get(session, backup_id)
        assert (row.kind, row.state, row.facts["keys"]) == ("snapshot", "verified", {"0": 300})
    packs = sorted((tmp_path / "repo" / "sessions" / "data").rglob("*"),
                   key=lambda path: path.stat().st_size)
    biggest = [pack for pack in packs if pack.is_file()][-1]
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    biggest.write_bytes(bytes(data))
    broken = verify(store, engine, scratch=tmp_path / "scratch", clock=SystemClock(), actor="ana",
                    repository="local")
    assert not broken.ok and broken.problems
    with store.session() as session:
        assert service.get(session, backup_id).state == "verify-failed"


def test_opsplanes_own_store_is_backed_up_and_verified(
        tmp_path: Path, s3: TemporaryS3, store: Store) -> None:
    inv = inventory(tmp_path, s3, "",
                    f"own-store: {{engine: sqlite, paths: [{tmp_path}/opsplane.db]}}")
    _, backup_id = backed_up_and_verified(inv, "own-store", store, tmp_path)
    with store.session() as session:
        row = service.get(session, backup_id)
        assert row.facts["tables"]["backups"] >= 0 and row.checksum


def test_a_logical_dump_is_restored_into_a_scratch_cluster_with_the_same_rows(
        tmp_path: Path, s3: TemporaryS3, store: Store) -> None:
    with TemporaryPostgres(tmp_path / "pg") as cluster:
        cluster.execute("CREATE DATABASE shop")
        cluster.execute("CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 2500) g",
                        database="shop")
        inv = inventory(tmp_path, s3,
                        f"databases: {{shop-db: {{port: {cluster.port}, database: shop}}}}",
                        "shop-db: {engine: pg_dump}")
        _, backup_id = backed_up_and_verified(inv, "shop-db", store, tmp_path)
    with store.session() as session:
        assert service.get(session, backup_id).facts["tables"] == {"public.orders": 2500}


def test_a_copy_gone_from_the_offsite_bucket_raises_offsite_copy_missing(
        tmp_path: Path, s3: TemporaryS3, store: Store) -> None:
    from opsplane.backup.series import backup_samples
    from opsplane.backup.status import policy_status

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "product-1.jpg").write_bytes(b"\xff\xd8" + b"0" * 5000)
    inv = inventory(tmp_path, s3, "", f"uploads: {{engine: files, paths: [{uploads}]}}")
    engine, backup_id = backed_up_and_verified(inv, "uploads", store, tmp_path)
    bucket = inv.backup.repositories["offsite"].s3.bucket
    client = s3.client()
    try:
        listed = client.list_objects_v2(Bucket=bucket, Prefix="opsplane/uploads/snapshots/")["Contents"]
        for item in listed:  # someone emptied the offsite copy's snapshot
            client.delete_object(Bucket=bucket, Key=item["Key"])
    finally:
        client.close()
    runs = BackupRuns(store, clock=SystemClock(), holder="test", actor="opsplane")
    try:
        problems = runs.check_repositories(engine)
    finally:
        runs.close()
    assert problems["local"] == [] and any("is missing" in p for p in problems["offsite"])
    with store.session() as session:
        status = policy_status(session, inv, apply(inv, "uploads"), now=datetime.now(UTC))
        assert status.missing_offsite == ("offsite",)
        assert "no offsite copy: offsite has no good backup" in status.compliance.violations
        assert service.get(session, backup_id).state == "verified"  # the local copy is still good
    series = {dict(labels)["__name__"] for labels, _ in backup_samples([status], env="production")}
    assert "opsplane_backup_offsite_missing" in series
