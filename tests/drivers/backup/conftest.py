"""Fixtures of the backup driver tests: restic repositories in a temporary directory, and
a way to prove that what they hold is unreadable without the key."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsplane.drivers.backup.base import Repository
from opsplane.drivers.backup.restic import Restic
from opsplane.drivers.sandbox.s3 import TemporaryS3

# Written into Redis values, files and table rows; it must never be readable in a repository.
CANARY = "opsplane-canary-7f3a"
REPO_PASSWORD = "restic-test-key-5b1e"


@pytest.fixture
def local_repo(tmp_path: Path) -> Repository:
    """A restic repository in a directory (not yet created)."""
    return Repository(name="local", path=str(tmp_path / "repo"), cipher_pass=REPO_PASSWORD)


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryS3]:
    """One S3 store over TLS on loopback (moto) for the whole session; tests use own buckets."""
    with TemporaryS3(tmp_path_factory.mktemp("s3")) as store:
        yield store


@pytest.fixture(scope="session")
def s3_template(s3_store: TemporaryS3, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A bucket holding an empty repository at restic/shop with REPO_PASSWORD, created once
    over TLS with `restic init` (seconds of key derivation), for tests to copy."""
    bucket = "template"
    s3_store.create_bucket(bucket)
    repository = Repository(name="template", path="restic/shop", cipher_pass=REPO_PASSWORD,
                            s3=s3_store.location(bucket))
    Restic(repository, cache_dir=str(tmp_path_factory.mktemp("cache"))).init()
    return bucket


@pytest.fixture
def s3_repo(s3_store: TemporaryS3, s3_template: str) -> Repository:
    """A restic repository at restic/shop in a new bucket of the S3 store (a copy of
    `s3_template`'s), named "offsite"."""
    bucket = f"backups-{uuid.uuid4().hex[:12]}"
    s3_store.create_bucket(bucket)
    client = s3_store.client()
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_template):
            for item in page.get("Contents", []):
                client.copy_object(Bucket=bucket, Key=item["Key"],
                                   CopySource={"Bucket": s3_template, "Key": item["Key"]})
    finally:
        client.close()
    return Repository(name="offsite", path="restic/shop", cipher_pass=REPO_PASSWORD,
                      s3=s3_store.location(bucket), offsite=True)


def bucket_objects_containing(store: TemporaryS3, bucket: str, needle: bytes) -> list[str]:
    """The keys of every object in `bucket` whose bytes contain `needle`; the bucket must
    hold objects at all (an empty bucket would prove nothing)."""
    client = store.client()
    try:
        keys = [item["Key"] for page in client.get_paginator("list_objects_v2")
                .paginate(Bucket=bucket) for item in page.get("Contents", [])]
        assert keys, f"bucket {bucket} is empty"
        return [key for key in keys
                if needle in client.get_object(Bucket=bucket, Key=key)["Body"].read()]
    finally:
        client.close()


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
    """Every file under `root` whose bytes contain `needle`; there must be files at all."""
    files = [path for path in root.rglob("*") if path.is_file()]
    assert files, f"{root} holds no files"
    return [path for path in files if needle in path.read_bytes()]
