"""Fixtures of the backup driver tests: a directory PostgreSQL's OS user can reach, one real S3
store over TLS, PostgreSQL clusters archiving into pgBackRest stanzas with one local and one S3
repository, both encrypted, restic repositories, and ways to prove that what they hold is
unreadable without the key."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsplane.drivers.backup.base import Repository
from opsplane.drivers.backup.pgbackrest import PgBackRest
from opsplane.drivers.backup.restic import Restic
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.s3 import TemporaryS3

LOCAL_PASS = "local-cipher-pass-5b1e"
S3_PASS = "offsite-cipher-pass-c94d"


def cluster_owner() -> str | None:
    """The OS user TemporaryPostgres runs the server as: `postgres` when we are root."""
    return "postgres" if os.geteuid() == 0 else None


def give_to_owner(path: Path) -> Path:
    owner = cluster_owner()
    if owner is not None:
        account = pwd.getpwnam(owner)
        os.chown(path, account.pw_uid, account.pw_gid)
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """A directory every test file of ours goes into, reachable by PostgreSQL's OS user
    (pytest's own temporary directories are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="opsplane-backup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def s3(shared_dir: Path) -> Iterator[TemporaryS3]:
    with TemporaryS3(shared_dir / "s3") as store:
        yield store


@dataclass
class Stack:
    """A running cluster archiving into stanza `driver.stanza`: repo1 `local_dir`, repo2 the
    S3 `bucket`."""

    cluster: TemporaryPostgres
    driver: PgBackRest
    local_dir: Path
    bucket: str
    root: Path


@pytest.fixture(scope="session")
def make_stack(shared_dir: Path, s3: TemporaryS3) -> Iterator[Callable[..., Stack]]:
    """Start a cluster named `name` and create its stanza in both repositories."""
    started: list[TemporaryPostgres] = []

    def make(name: str, *, process_max: int = 2) -> Stack:
        root = shared_dir / name
        root.mkdir()
        local_dir = root / "repo1"
        local_dir.mkdir()
        give_to_owner(local_dir)
        bucket = f"opsplane-{name}"
        s3.create_bucket(bucket)
        repositories = [
            Repository(name="local", path=str(local_dir), cipher_pass=LOCAL_PASS),
            Repository(name="offsite", path=f"/pgbackrest/{name}", cipher_pass=S3_PASS,
                       s3=s3.location(bucket), offsite=True),
        ]
        driver = PgBackRest(
            name, data_dir="/nonexistent", port=0, socket_dir="/nonexistent",
            config_dir=root / "pgbackrest", repositories=repositories, os_user=cluster_owner(),
            process_max=process_max, io_timeout=10,
        )
        cluster = TemporaryPostgres(root / "pg", settings=driver.archive_settings())
        started.append(cluster)
        cluster.start()
        driver.data_dir, driver.port, driver.socket_dir = (
            cluster.data_dir, cluster.port, cluster.socket_dir)
        driver.create_stanza()
        return Stack(cluster, driver, local_dir, bucket, root)

    yield make
    for cluster in started:
        cluster.stop()


# Written into Redis values, files and table rows; it must never be readable in a repository.
CANARY = "opsplane-canary-7f3a"
REPO_PASSWORD = "restic-test-key-5b1e"


@pytest.fixture
def local_repo(tmp_path: Path) -> Repository:
    """A restic repository in a directory (not yet created)."""
    return Repository(name="local", path=str(tmp_path / "repo"), cipher_pass=REPO_PASSWORD)


@pytest.fixture(scope="session")
def s3_store(s3: TemporaryS3) -> TemporaryS3:
    """The session's S3 store over TLS on loopback (moto); tests use buckets of their own."""
    return s3


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
