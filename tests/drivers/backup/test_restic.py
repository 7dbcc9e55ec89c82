"""The restic driver against the real restic, on a repository in a directory."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from opsplane.drivers.backup.base import BackupEngineError, Repository
from opsplane.drivers.backup.restic import Restic
from opsplane.drivers.sandbox.s3 import TemporaryS3
from tests.drivers.backup.conftest import (
    CANARY,
    REPO_PASSWORD,
    bucket_objects_containing,
    files_containing,
)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def _make_tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "random.bin").write_bytes(os.urandom(300_000))
    (root / "sub" / "notes.txt").write_text(f"line with {CANARY}\n" * 2000)
    (root / "sub" / "deeper" / "empty").write_bytes(b"")
    return root


def test_init_creates_a_compressed_repository_once(tmp_path: Path) -> None:
    restic = Restic(Repository(name="new", path=str(tmp_path / "new"), cipher_pass="k-1"))
    assert restic.init() is True
    assert restic.init() is False
    assert (tmp_path / "new" / "config").is_file()
    assert restic.snapshots() == []


def test_backup_list_restore_gives_the_same_bytes(
    tmp_path: Path, local_repo: Repository, make_restic: Callable[[Repository], Restic]
) -> None:
    source = _make_tree(tmp_path / "source")
    restic = make_restic(local_repo)
    seen: list[float | None] = []
    saved = restic.backup_paths(["."], cwd=source, tags=["files", "restic"],
                                progress=lambda phase, fraction: seen.append(fraction))
    assert seen[0] == 0.0 and seen[-1] == 1.0
    assert saved.file_count == 3
    assert saved.size_bytes == sum(len(data) for data in _tree(source).values())
    # Compressed: the repeated text shrinks, random data does not.
    packed = sum(f.stat().st_size for f in (Path(local_repo.path) / "data").rglob("*") if f.is_file())
    assert 300_000 < packed < saved.size_bytes <= saved.added_bytes  # added: data and tree, uncompressed
    other = restic.backup_paths([source / "sub"], tags=["other"])

    listed = restic.snapshots()
    assert [snap.short_id for snap in listed] == [saved.snapshot_id, other.snapshot_id]
    assert listed[0].tags == ("files", "restic") and listed[0].hostname == "opsplane-test"
    assert listed[0].paths == (str(source),)
    assert [snap.short_id for snap in restic.snapshots(tags=["files"])] == [saved.snapshot_id]
    assert restic.snapshots(tags=["files", "other"]) == []

    restic.restore(saved.snapshot_id, tmp_path / "back")
    assert _tree(tmp_path / "back") == _tree(source)
    restic.restore(other.snapshot_id, tmp_path / "partial", include=["notes.txt"])
    assert _tree(tmp_path / "partial" / str(source / "sub").lstrip("/")) == {
        "notes.txt": (source / "sub" / "notes.txt").read_bytes()}

    assert restic.stats().snapshot_count == 2
    restic.forget([other.snapshot_id])
    restic.prune()
    assert [snap.short_id for snap in restic.snapshots()] == [saved.snapshot_id]
    assert restic.check(read_data=True) == []
    assert files_containing(Path(local_repo.path), CANARY.encode()) == []
    assert files_containing(tmp_path / "cache", CANARY.encode()) == []


def test_backup_from_a_program_and_a_failing_program(
    tmp_path: Path, local_repo: Repository, make_restic: Callable[[Repository], Restic]
) -> None:
    restic = make_restic(local_repo)
    saved = restic.backup_stdin(["sh", "-c", 'printf "%s" "$WORD"'], "word.txt",
                                tags=["stdin"], producer_env={"WORD": CANARY})
    assert saved.size_bytes == len(CANARY)
    restic.restore(saved.snapshot_id, tmp_path / "back")
    assert (tmp_path / "back" / "word.txt").read_text() == CANARY
    (tmp_path / "dump.bin").write_bytes(b"\x00\x01" * 5000)
    with open(tmp_path / "dump.bin", "rb") as stream:
        from_file = restic.backup_stdin(stream, "dump.bin", tags=["stdin"])
    assert from_file.size_bytes == 10_000

    with pytest.raises(BackupEngineError, match="sh failed, the snapshot was removed: exit 3"):
        restic.backup_stdin(["sh", "-c", "echo partial; echo broken >&2; exit 3"], "x.txt")
    assert [snap.short_id for snap in restic.snapshots()] == [saved.snapshot_id, from_file.snapshot_id]


def test_check_reading_the_data_finds_a_flipped_byte(
    tmp_path: Path, local_repo: Repository, make_restic: Callable[[Repository], Restic]
) -> None:
    source = _make_tree(tmp_path / "source")
    restic = make_restic(local_repo)
    restic.backup_paths(["."], cwd=source)
    assert restic.check(read_data=True) == []
    pack = max((path for path in (Path(local_repo.path) / "data").rglob("*") if path.is_file()),
               key=lambda path: path.stat().st_size)
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0x01
    pack.chmod(0o600)
    pack.write_bytes(bytes(data))

    assert restic.check(read_data=False) == []  # the structure is intact: only reading tells
    problems = restic.check(read_data=True)
    assert problems, "a corrupted pack went unnoticed"
    assert any(pack.name in problem for problem in problems), problems


def test_a_wrong_key_is_a_clear_error_without_the_key(
    local_repo: Repository, make_restic: Callable[[Repository], Restic]
) -> None:
    make_restic(local_repo)
    wrong = Repository(name="local", path=local_repo.path, cipher_pass="not-the-key-0c4d")
    for attempt in (lambda: Restic(wrong).init(), lambda: Restic(wrong).snapshots()):
        with pytest.raises(BackupEngineError) as caught:
            attempt()
        message = str(caught.value)
        assert "repository 'local'" in message and "key is not the one configured" in message
        assert "not-the-key-0c4d" not in message and REPO_PASSWORD not in message


def test_a_missing_repository_is_named(tmp_path: Path) -> None:
    restic = Restic(Repository(name="gone", path=str(tmp_path / "nothing"), cipher_pass="k"))
    with pytest.raises(BackupEngineError, match="restic list snapshots on repository 'gone'"):
        restic.snapshots()


def test_a_backup_killed_midway_leaves_no_snapshot_and_the_next_one_works(
    tmp_path: Path, local_repo: Repository, make_restic: Callable[[Repository], Restic]
) -> None:
    source = tmp_path / "big"
    source.mkdir()
    for index in range(30):
        (source / f"part-{index:02}.bin").write_bytes(os.urandom(10 * 1024 * 1024))
    restic = make_restic(local_repo)
    killed: list[int] = []

    def kill_restic(phase: str, fraction: float | None) -> None:
        if killed or not fraction or fraction >= 1.0:
            return
        for child in psutil.Process().children(recursive=True):
            if child.name() == "restic":
                os.kill(child.pid, signal.SIGKILL)
                killed.append(child.pid)

    with pytest.raises(BackupEngineError, match=r"restic backup on repository 'local' failed"):
        restic.backup_paths(["."], cwd=source, progress=kill_restic)
    assert killed
    assert list((Path(local_repo.path) / "locks").iterdir()), "restic left no lock behind"
    assert restic.snapshots() == []

    (source / "part-00.bin").write_bytes(b"small now")
    for index in range(1, 30):
        (source / f"part-{index:02}.bin").unlink()
    saved = restic.backup_paths(["."], cwd=source)
    assert [snap.short_id for snap in restic.snapshots()] == [saved.snapshot_id]
    # check and prune need the repository to themselves: the dead backup's lock is removed.
    assert restic.check() == []
    assert restic.stale_locks_removed == 1
    restic.prune()
    restic.restore(saved.snapshot_id, tmp_path / "back")
    assert (tmp_path / "back" / "part-00.bin").read_bytes() == b"small now"


def test_an_s3_repository_over_tls_holds_only_ciphertext(
    tmp_path: Path, s3_repo: Repository, s3_store: TemporaryS3,
    make_restic: Callable[[Repository], Restic],
) -> None:
    assert s3_repo.s3 is not None
    source = _make_tree(tmp_path / "source")
    restic = make_restic(s3_repo)
    assert restic.location == f"s3:https://{s3_store.endpoint}/{s3_repo.s3.bucket}/restic/shop"
    saved = restic.backup_paths(["."], cwd=source, tags=["files"])
    assert [snap.short_id for snap in restic.snapshots()] == [saved.snapshot_id]
    restic.restore(saved.snapshot_id, tmp_path / "back")
    assert _tree(tmp_path / "back") == _tree(source)
    assert restic.check(read_data=True) == []
    assert bucket_objects_containing(s3_store, s3_repo.s3.bucket, CANARY.encode()) == []

    wrong = dataclasses.replace(s3_repo, cipher_pass="not-the-key-0c4d")
    with pytest.raises(BackupEngineError) as caught:
        Restic(wrong, cache_dir=str(tmp_path / "cache")).snapshots()
    message = str(caught.value)
    assert "repository 'offsite'" in message and "key is not the one configured" in message
    for secret in ("not-the-key-0c4d", REPO_PASSWORD, s3_repo.s3.secret_key):
        assert secret not in message


def test_the_command_line_carries_no_secret_and_tls_options_only_when_asked(
    s3_repo: Repository,
) -> None:
    assert s3_repo.s3 is not None
    restic = Restic(s3_repo)
    argv = restic._argv(["snapshots"])
    assert argv[argv.index("--cacert") + 1] == s3_repo.s3.ca_file
    assert "--insecure-tls" not in argv
    for secret in (REPO_PASSWORD, s3_repo.s3.secret_key, s3_repo.s3.access_key):
        assert not any(secret in word for word in argv)
    assert restic._env()["RESTIC_PASSWORD"] == REPO_PASSWORD
    assert restic._env()["AWS_SECRET_ACCESS_KEY"] == s3_repo.s3.secret_key
    loose = dataclasses.replace(
        s3_repo, s3=dataclasses.replace(s3_repo.s3, ca_file=None, verify_tls=False))
    argv = Restic(loose)._argv(["snapshots"])
    assert "--insecure-tls" in argv and "--cacert" not in argv


def test_a_backup_of_a_missing_path_is_refused(
    tmp_path: Path, local_repo: Repository, make_restic: Callable[[Repository], Restic]
) -> None:
    # restic 0.14 itself would skip it with a warning, exit 0 and make a snapshot.
    source = _make_tree(tmp_path / "source")
    restic = make_restic(local_repo)
    with pytest.raises(BackupEngineError, match="these paths do not exist: .*vanished"):
        restic.backup_paths([source, tmp_path / "vanished"])
    with pytest.raises(BackupEngineError, match="these paths do not exist: gone"):
        restic.backup_paths(["sub", "gone"], cwd=source)
    assert restic.snapshots() == []
