"""Sealed archives in a directory and in a real S3-compatible bucket: what goes in comes out byte for
byte, nothing readable is stored, and a changed, cut or foreign object is refused by name."""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from opsplane.drivers.backup.base import BackupEngineError, Repository, StoredCopy
from opsplane.drivers.backup.sealed import CHUNK, MANIFEST, PARTIAL, SealedCopies
from opsplane.drivers.sandbox.s3 import TemporaryS3
from tests.drivers.backup.conftest import CANARY, bucket_objects_containing, files_containing

KEY = "sealed-test-key-41c9"


def _tree(root: Path) -> Path:
    """Files of every shape: empty, small, exactly one chunk, several chunks, in a subdirectory."""
    (root / "sub").mkdir(parents=True)
    (root / "empty.dat").write_bytes(b"")
    (root / "toc.dat").write_bytes(f"{CANARY} table of contents\n".encode())
    (root / "one.dat").write_bytes(os.urandom(CHUNK))
    rows = b"".join(b"%d\t%s %d\n" % (n, CANARY.encode(), n) for n in range(400_000))
    (root / "sub" / "rows.dat").write_bytes(rows + os.urandom(1000))
    assert (root / "sub" / "rows.dat").stat().st_size > 2 * CHUNK
    return root


def _local(tmp_path: Path, name: str = "local") -> Repository:
    return Repository(name=name, path=str(tmp_path / name), cipher_pass=KEY)


@pytest.fixture
def bucket_repo(s3_store: TemporaryS3) -> Repository:
    bucket = f"sealed-{uuid.uuid4().hex[:12]}"
    s3_store.create_bucket(bucket)
    return Repository(name="offsite", path="opsplane/shop-db", cipher_pass=KEY,
                      s3=s3_store.location(bucket), offsite=True)


def test_a_tree_sealed_into_a_directory_and_a_bucket_comes_back_byte_for_byte(
    tmp_path: Path, bucket_repo: Repository, s3_store: TemporaryS3,
) -> None:
    source = _tree(tmp_path / "source")
    local = _local(tmp_path)
    copies = SealedCopies([bucket_repo, local], jobs=2, work_dir=tmp_path)
    heard: list[tuple[str, float | None]] = []
    saved = copies.save_tree(source, progress=lambda phase, fraction: heard.append((phase, fraction)))

    assert [c.repository for c in saved.copies] == ["local", "offsite"]  # the directory first
    assert len({c.label for c in saved.copies}) == 1
    assert saved.size_bytes == sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    label = saved.copies[0].label
    assert bucket_repo.s3 is not None
    client = s3_store.client()
    try:  # the checksum names the archive: its manifest, the same in every repository
        in_bucket = client.get_object(Bucket=bucket_repo.s3.bucket,
                                      Key=f"opsplane/shop-db/{label}/{MANIFEST}")["Body"].read()
    finally:
        client.close()
    in_directory = (Path(local.path) / label / MANIFEST).read_bytes()
    assert saved.checksum == hashlib.sha256(in_directory).hexdigest() == hashlib.sha256(in_bucket).hexdigest()
    assert ("backup", 1.0) in heard and ("copy to offsite", 1.0) in heard
    assert copies.held("local") == {label} == copies.held("offsite")
    assert copies.check("local") == [] and copies.check("offsite") == []

    assert files_containing(Path(local.path), CANARY.encode()) == []
    assert bucket_objects_containing(s3_store, bucket_repo.s3.bucket, CANARY.encode()) == []
    assert not list(Path(local.path).glob(f"{PARTIAL}*"))

    for copy in saved.copies:
        target = tmp_path / f"restored-{copy.repository}"
        restored = copies.restore(copy, target)
        assert {entry.path for entry in restored} == {"empty.dat", "toc.dat", "one.dat", "sub/rows.dat"}
        for path in source.rglob("*"):
            if path.is_file():
                assert (target / path.relative_to(source)).read_bytes() == path.read_bytes()

    copies.remove("offsite", label)
    assert copies.held("offsite") == set() and copies.held("local") == {label}


def test_a_changed_byte_is_found_by_the_check_and_refused_by_the_restore(tmp_path: Path) -> None:
    copies = SealedCopies([_local(tmp_path)], work_dir=tmp_path)
    saved = copies.save_tree(_tree(tmp_path / "source"))
    copy = saved.copies[0]
    manifest = json.loads((tmp_path / "local" / copy.label / MANIFEST).read_text())
    rows = next(entry for entry in manifest["files"] if entry["path"] == "sub/rows.dat")
    damaged = tmp_path / "local" / copy.label / "data" / rows["object"]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))

    assert copies.check("local", read_data="none") == []  # the size is right: only reading finds it
    (problem,) = copies.check("local")  # the newest archive is read back
    assert f"archive {copy.label}: sub/rows.dat (object {rows['object']})" in problem
    assert "does not match its SHA-256" in problem
    with pytest.raises(BackupEngineError, match=r"sub/rows\.dat .*fails its authentication"):
        copies.restore(copy, tmp_path / "restored")


def test_a_cut_object_a_missing_one_and_a_wrong_key_are_named(tmp_path: Path) -> None:
    copies = SealedCopies([_local(tmp_path)], work_dir=tmp_path)
    copy = copies.save_tree(_tree(tmp_path / "source")).copies[0]
    data_dir = tmp_path / "local" / copy.label / "data"
    manifest = json.loads((tmp_path / "local" / copy.label / MANIFEST).read_text())
    by_path = {entry["path"]: entry["object"] for entry in manifest["files"]}

    stranger = SealedCopies([Repository(name="local", path=str(tmp_path / "local"),
                                        cipher_pass="another-key-77")], work_dir=tmp_path)
    with pytest.raises(BackupEngineError, match="the repository's key does not open it"):
        stranger.restore(copy, tmp_path / "by-stranger")
    assert not (tmp_path / "by-stranger").exists() or not any((tmp_path / "by-stranger").iterdir())

    rows = data_dir / by_path["sub/rows.dat"]
    rows.write_bytes(rows.read_bytes()[: rows.stat().st_size - CHUNK // 3])
    with pytest.raises(BackupEngineError, match=r"sub/rows\.dat .*(is cut off|fails its authentication)"):
        copies.restore(copy, tmp_path / "restored-cut")

    (data_dir / by_path["toc.dat"]).unlink()
    problems = copies.check("local", read_data="none")
    assert any("toc.dat" in p and "is missing" in p for p in problems)
    assert any("sub/rows.dat" in p and "the manifest says" in p for p in problems)


def test_an_interrupted_save_leaves_nothing_held_and_its_leftovers_go_a_day_later(tmp_path: Path) -> None:
    source = _tree(tmp_path / "source")
    copies = SealedCopies([_local(tmp_path)], work_dir=tmp_path)

    def interrupt(phase: str, fraction: float | None) -> None:
        if fraction is not None and 0.3 < fraction < 1.0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        copies.save_tree(source, progress=interrupt)
    assert copies.held("local") == set()
    assert list((tmp_path / "local").iterdir()) == []

    # what a kill -9 leaves: a partial archive; young ones stay (a backup may still be writing it)
    leftover = tmp_path / "local" / f"{PARTIAL}20261201T000000Z-0badf00d"
    (leftover / "data").mkdir(parents=True)
    (leftover / "data" / "00000").write_bytes(b"half")
    saved = copies.save_tree(source)
    assert leftover.exists() and copies.held("local") == {saved.copies[0].label}
    day_ago = time.time() - 25 * 3600
    os.utime(leftover, (day_ago, day_ago))
    copies.save_tree(source)
    assert not leftover.exists() and len(copies.held("local")) == 2


def test_a_restore_from_an_unknown_repository_or_archive_is_named(tmp_path: Path) -> None:
    copies = SealedCopies([_local(tmp_path)], work_dir=tmp_path)
    copies.prepare("local")
    with pytest.raises(BackupEngineError, match="there is no repository 'elsewhere' here"):
        copies.held("elsewhere")
    with pytest.raises(BackupEngineError, match="archive nope in repository 'local': its manifest cannot"):
        copies.restore(StoredCopy("local", "nope"), tmp_path / "x")
