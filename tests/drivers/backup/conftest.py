"""Fixtures of the backup driver tests: a directory PostgreSQL's OS user can reach, a real
S3 store over TLS, and PostgreSQL clusters archiving into pgBackRest stanzas with one local
and one S3 repository, both encrypted."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opsplane.drivers.backup.base import Repository
from opsplane.drivers.backup.pgbackrest import PgBackRest
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
