"""Fixtures of the backup driver tests: restic repositories in a temporary directory, and
a way to prove that what they hold is unreadable without the key."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from opsplane.drivers.backup.base import Repository
from opsplane.drivers.backup.restic import Restic

# Written into Redis values, files and table rows; it must never be readable in a repository.
CANARY = "opsplane-canary-7f3a"
REPO_PASSWORD = "restic-test-key-5b1e"


@pytest.fixture
def local_repo(tmp_path: Path) -> Repository:
    """A restic repository in a directory (not yet created)."""
    return Repository(name="local", path=str(tmp_path / "repo"), cipher_pass=REPO_PASSWORD)


@pytest.fixture(scope="session")
def initialized_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty repository with REPO_PASSWORD, made once: `restic init` spends seconds
    tuning its key derivation, so tests copy this one instead of creating their own."""
    path = tmp_path_factory.mktemp("template") / "repo"
    Restic(Repository(name="template", path=str(path), cipher_pass=REPO_PASSWORD)).init()
    return path


@pytest.fixture
def make_restic(tmp_path: Path, initialized_repo: Path) -> Callable[[Repository], Restic]:
    """A Restic for a repository, its cache in the test's directory, the repository created
    (a directory one with REPO_PASSWORD as a copy of `initialized_repo`)."""

    def make(repository: Repository) -> Restic:
        restic = Restic(repository, host="opsplane-test", cache_dir=str(tmp_path / "cache"),
                        timeout=120)
        target = Path(repository.path)
        if repository.kind == "posix" and repository.cipher_pass == REPO_PASSWORD \
                and not target.exists():
            shutil.copytree(initialized_repo, target)
        else:
            restic.init()
        return restic

    return make


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Every file under `root` whose bytes contain `needle`."""
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]
