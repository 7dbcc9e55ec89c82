"""Bad input to the backup commands gets a clear error and exit 3, and changes nothing: an unknown
policy, a missing key, no repository reachable, a restore time of a policy without continuous
archiving; and the reads work on an empty catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsplane.backup import service
from opsplane.store import Store
from tests.support.cli import Opsplane

pytestmark = pytest.mark.slow


@pytest.fixture
def opsplane(tmp_path: Path) -> Opsplane:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "a.txt").write_text("a")
    return Opsplane(tmp_path, {
        "platform": {"name": "shop"},
        "runtime": {"state_dir": str(tmp_path / "state")},
        "backup": {
            "encryption_key": "env:BACKUP_KEY",
            "repositories": {
                "local": {"path": str(tmp_path / "repo")},
                "offsite": {"type": "s3", "s3": {"endpoint": "127.0.0.1:1", "bucket": "nowhere",
                                                 "access_key": "env:S3_KEY", "secret_key": "env:S3_SECRET"}},
            },
            "policies": {"uploads": {"engine": "files", "paths": [str(uploads)]},
                         "local-only": {"engine": "files", "paths": [str(uploads)],
                                        "repositories": ["local"]}},
        },
    }, environ={"BACKUP_KEY": "cli-test-key-3f9a", "S3_KEY": "k", "S3_SECRET": "s"})


def backups(opsplane: Opsplane) -> list[int]:
    store = Store.open(opsplane.env["OPSPLANE_DATABASE_URL"])
    try:
        with store.session() as session:
            return [row.id for row in service.get_all(session)]
    finally:
        store.close()


def test_an_unknown_policy_is_named_with_the_defined_ones(opsplane: Opsplane) -> None:
    ran = opsplane("backup", "run", "upload", code=3)
    assert "no backup policy 'upload' (did you mean 'uploads'?)" in ran.stderr
    assert backups(opsplane) == []


def test_a_missing_key_is_named_and_nothing_is_recorded(opsplane: Opsplane) -> None:
    del opsplane.env["BACKUP_KEY"]
    ran = opsplane("backup", "run", "local-only", code=3)
    assert "secret env:BACKUP_KEY is not set: export BACKUP_KEY" in ran.stderr
    assert backups(opsplane) == []


def test_no_repository_reachable_is_refused_before_anything_is_recorded(opsplane: Opsplane) -> None:
    ran = opsplane("backup", "run", "uploads", code=3)
    assert "offsite" in ran.stderr and "nothing was recorded" in ran.stderr
    assert "cli-test-key" not in ran.stderr and backups(opsplane) == []


def test_a_point_in_time_needs_continuous_archiving(opsplane: Opsplane) -> None:
    opsplane("backup", "run", "local-only", "--no-check", code=0)
    ran = opsplane("restore", "local-only", "--at", "5m", "--to", str(opsplane.cwd / "out"), code=3)
    assert "restores whole backups, not moments between them" in ran.stderr
    assert not (opsplane.cwd / "out").exists()
    listed = opsplane.json("backup", "list", "local-only")
    assert [item["state"] for item in listed] == ["complete"]
    assert opsplane("backup", "status", "local-only", code=1).stdout.count("3-2-1 not met") == 1
