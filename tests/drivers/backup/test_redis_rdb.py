"""Redis snapshots taken with redis-cli --rdb, kept with restic, checked on a scratch Redis."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from opsplane.drivers.backup.base import BackupEngineError, Repository
from opsplane.drivers.backup.copies import ResticCopies, file_sha256
from opsplane.drivers.backup.redis_rdb import RDB_NAME, RedisRdbBackup
from opsplane.drivers.backup.restic import Restic
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.drivers.sandbox.s3 import TemporaryS3
from tests.drivers.backup.conftest import CANARY, bucket_objects_containing, files_containing

REDIS_PASSWORD = "redis-backup-secret-91"
# Redis 7 waits 5 s by default before streaming an RDB to a new replica (or redis-cli --rdb).
NO_SYNC_DELAY = ["--repl-diskless-sync-delay", "0"]


def test_a_snapshot_restored_into_a_scratch_redis_has_the_same_keys(
    tmp_path: Path, local_repo: Repository, s3_repo: Repository, s3_store: TemporaryS3,
    make_restic: Callable[[Repository], Restic],
) -> None:
    make_restic(local_repo)
    copies = ResticCopies([local_repo, s3_repo], cache_dir=str(tmp_path / "cache"))
    with TemporaryRedis(tmp_path / "live", password=REDIS_PASSWORD,
                        extra_args=NO_SYNC_DELAY) as live:
        client = live.client()
        client.mset({f"user:{n}": f"{CANARY}-{n}" for n in range(1500)})
        client.select(1)
        client.mset({f"session:{n}": "x" * 40 for n in range(700)})
        client.hset("cart:7", mapping={"item": CANARY, "qty": "3"})
        client.close()
        backup = RedisRdbBackup("shop-cache", live.host, live.port, copies,
                                password=REDIS_PASSWORD, work_dir=tmp_path)
        outcome = backup.backup()
        assert list((tmp_path / "live").glob("*.rdb")) == []  # the server's own dir untouched

    assert outcome.kind == "snapshot"
    assert outcome.facts["keys"] == outcome.facts["keys_after"] == {"0": 1500, "1": 701}
    assert outcome.facts["redis_version"].startswith("7.")
    assert outcome.facts["used_memory"] > 0
    assert outcome.size_bytes == outcome.facts["rdb_bytes"] > 0
    local, copy = outcome.copies  # the offsite copy is the one restored below
    assert copy.repository == "offsite" and local.repository == "local"
    for stored in outcome.copies:
        (snapshot,) = copies.engine(stored.repository).snapshots(tags=["shop-cache", "redis"])
        assert snapshot.short_id == stored.label
    assert list(tmp_path.glob("opsplane-rdb-*")) == []  # the RDB file was removed

    assert backup.verify(copy, outcome, tmp_path / "verify") == []
    rdb = backup.restore_file(copy, tmp_path / "again")
    assert rdb.name == RDB_NAME and file_sha256(rdb) == outcome.checksum
    with backup.scratch_server(copy, tmp_path / "scratch") as scratch:
        client = scratch.client()
        assert client.get("user:1234") == f"{CANARY}-1234"
        client.select(1)
        assert client.hgetall("cart:7") == {"item": CANARY, "qty": "3"}
        client.close()
    assert files_containing(Path(local_repo.path), CANARY.encode()) == []
    assert s3_repo.s3 is not None
    assert bucket_objects_containing(s3_store, s3_repo.s3.bucket, CANARY.encode()) == []

    wrong = dataclasses.replace(outcome, facts={**outcome.facts, "keys": {"0": 1500, "1": 702},
                                                "keys_after": {"0": 1500, "1": 702}})
    assert backup.verify(copy, wrong, tmp_path / "verify-wrong") == [
        "db1 holds 701 keys, the backup recorded 702"]


def test_a_wrong_redis_password_is_named_without_it(tmp_path: Path, local_repo: Repository) -> None:
    copies = ResticCopies([local_repo], cache_dir=str(tmp_path / "cache"))
    with TemporaryRedis(tmp_path / "live", password=REDIS_PASSWORD) as live:
        backup = RedisRdbBackup("shop-cache", live.host, live.port, copies,
                                password="wrong-redis-pass-3", work_dir=tmp_path)
        with pytest.raises(BackupEngineError) as caught:
            backup._transfer(tmp_path / "x.rdb")
    assert "redis-cli --rdb from Redis 127.0.0.1" in str(caught.value)
    assert "WRONGPASS" in str(caught.value) and "wrong-redis-pass-3" not in str(caught.value)
