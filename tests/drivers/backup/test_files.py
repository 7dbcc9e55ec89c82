"""File trees backed up with restic to two repositories and restored under a directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from opsplane.drivers.backup.base import Repository
from opsplane.drivers.backup.copies import ResticCopies
from opsplane.drivers.backup.files import FileTreeBackup
from opsplane.drivers.backup.restic import Restic
from opsplane.drivers.sandbox.s3 import TemporaryS3
from tests.drivers.backup.conftest import CANARY, bucket_objects_containing, files_containing


def test_a_file_tree_in_two_repositories_comes_back_identical(
    tmp_path: Path, local_repo: Repository, s3_repo: Repository, s3_store: TemporaryS3,
    make_restic: Callable[[Repository], Restic],
) -> None:
    conf = tmp_path / "app" / "conf"
    (conf / "sites").mkdir(parents=True)
    (conf / "app.toml").write_text(f'secret = "{CANARY}"\n')
    (conf / "sites" / "shop.conf").write_text("server { listen 80; }\n" * 10_000)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "logo.png").write_bytes(os.urandom(50_000))
    make_restic(local_repo)
    copies = ResticCopies([s3_repo, local_repo], host="opsplane-test",
                          cache_dir=str(tmp_path / "cache"))
    backup = FileTreeBackup("shop", [conf, uploads / "logo.png"], copies)
    phases: list[str] = []

    outcome = backup.backup(progress=lambda phase, fraction: phases.append(phase))

    assert outcome.kind == "files"
    assert [copy.repository for copy in outcome.copies] == ["local", "offsite"]  # local first
    assert phases[0] == "backup" and phases[-1] == "copy to offsite"
    sizes = [path.stat().st_size for path in (conf / "app.toml", conf / "sites" / "shop.conf",
                                              uploads / "logo.png")]
    assert outcome.facts["file_count"] == 3
    assert outcome.facts["total_bytes"] == outcome.size_bytes == sum(sizes)
    assert outcome.started <= outcome.finished
    for copy in outcome.copies:
        restic = copies.engine(copy.repository)
        (snapshot,) = restic.snapshots()
        assert snapshot.short_id == copy.label and snapshot.tags == ("shop", "files")
        target = tmp_path / f"restored-{copy.repository}"
        assert backup.verify(copy, outcome, target) == []
        assert (target / str(conf).lstrip("/") / "app.toml").read_text() == \
            (conf / "app.toml").read_text()
    assert files_containing(Path(local_repo.path), CANARY.encode()) == []
    assert s3_repo.s3 is not None
    assert bucket_objects_containing(s3_store, s3_repo.s3.bucket, CANARY.encode()) == []

    (conf / "app.toml").write_text("changed\n")
    local_only = ResticCopies([local_repo], cache_dir=str(tmp_path / "cache"))
    changed = FileTreeBackup("shop", backup.paths, local_only).backup()
    problems = backup.verify(outcome.copies[0], changed, tmp_path / "old")
    assert problems and "manifest" in problems[0]
