"""The pgBackRest driver when things go wrong: a backup killed with SIGKILL half-way, a
repository PostgreSQL's user cannot write, an S3 endpoint that refuses, a wrong cipher pass."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from opsplane.drivers.backup.base import BackupEngineError, Repository, S3Location
from opsplane.drivers.backup.pgbackrest import PgBackRest
from opsplane.drivers.sandbox.ports import free_port
from tests.drivers.backup.conftest import LOCAL_PASS, S3_PASS, Stack, cluster_owner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack(make_stack: Any) -> Iterator[Stack]:
    yield make_stack("fail", process_max=1)


def _sibling(stack: Stack, name: str, repositories: list[Repository],
             io_timeout: float = 2) -> PgBackRest:
    """A driver for another stanza (or another view of this one) on the same cluster."""
    return PgBackRest(
        name, data_dir=stack.cluster.data_dir, port=stack.cluster.port,
        socket_dir=stack.cluster.socket_dir, config_dir=stack.root / f"config-{name}-{len(repositories)}",
        repositories=repositories, os_user=cluster_owner(), io_timeout=io_timeout,
    )


def _assert_clean(message: str, *secrets: str) -> None:
    assert "Traceback" not in message
    for secret in secrets:
        assert secret not in message


def _our_backup_processes(driver: PgBackRest) -> list[psutil.Process]:
    """pgbackrest processes running a backup of this driver's stanza (its own config file
    names them); runuser, their parent, is left alone."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        argv = process.info["cmdline"] or []
        if (process.info["name"] == "pgbackrest" and f"--config={driver.config_file}" in argv
                and any(word in ("backup", "backup:local") for word in argv)):
            found.append(process)
    return found


def test_a_backup_killed_half_way_is_not_listed_and_the_next_succeeds(stack: Stack) -> None:
    cluster, driver = stack.cluster, stack.driver
    cluster.execute("create table bulk as select g, md5(g::text) || md5((g * 7)::text) as a, "
                    "md5((g * 13)::text) as b from generate_series(1, 600000) g")
    before = [b.label for b in driver.info().backups_in(1)]
    halfway = threading.Event()
    failures: list[BaseException] = []

    def progress(phase: str, fraction: float | None) -> None:
        if fraction is not None and 0.02 < fraction < 0.9:
            halfway.set()

    def run() -> None:
        try:
            driver.backup("full", repo=1, progress=progress)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            failures.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert halfway.wait(60), "the backup showed no progress"
        victims = _our_backup_processes(driver)
        assert victims
        for process in victims:
            process.send_signal(signal.SIGKILL)
    finally:
        worker.join(120)
    assert len(failures) == 1 and isinstance(failures[0], BackupEngineError)
    assert "stanza fail" in str(failures[0]) and "repo1 (local)" in str(failures[0])
    info = driver.info()
    assert [b.label for b in info.backups_in(1)] == before
    assert not info.backup_running
    assert _our_backup_processes(driver) == []

    again = datetime.now(UTC)
    outcome = driver.backup("full", repo=1)
    label = outcome.copies[0].label
    listed = driver.info().backup(label, 1)
    assert listed is not None and listed.kind == "full" and not listed.error
    # pgBackRest resumed the killed backup (its lock, a flock, died with it): the label, made
    # from the local time a backup starts, is the killed one's; info's start time is new.
    assert label[:15] < again.astimezone().strftime("%Y%m%d-%H%M%S")
    assert cluster.execute("select count(*) from bulk") == [(600000,)]
    assert driver.verify(1).ok


def test_a_repository_the_cluster_user_cannot_write(stack: Stack, shared_dir: Path) -> None:
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o755)  # ours (root): PostgreSQL's user may look but not write
    driver = _sibling(stack, "unwritable", [
        Repository(name="local", path=str(locked / "repo"), cipher_pass=LOCAL_PASS)])
    with pytest.raises(BackupEngineError) as caught:
        driver.create_stanza()
    message = str(caught.value)
    assert "stanza-create of stanza unwritable in repo1 (local) failed" in message
    assert str(locked / "repo") in message and "Permission denied" in message
    _assert_clean(message, LOCAL_PASS)


def test_an_s3_endpoint_that_refuses(stack: Stack, s3: Any) -> None:
    closed = S3Location(endpoint=f"127.0.0.1:{free_port()}", bucket="nowhere", region="us-east-1",
                        access_key=s3.access_key, secret_key=s3.secret_key, ca_file=str(s3.ca_file))
    driver = _sibling(stack, "refused", [
        Repository(name="offsite", path="/pgbackrest/refused", cipher_pass=S3_PASS, s3=closed)],
        io_timeout=0.5)
    with pytest.raises(BackupEngineError) as caught:
        driver.create_stanza()
    message = str(caught.value)
    assert "stanza-create of stanza refused in repo1 (offsite) failed" in message
    assert f"unable to connect to '127.0.0.1:{closed.port}'" in message
    assert "Connection refused" in message
    _assert_clean(message, S3_PASS, s3.secret_key)


def test_a_wrong_cipher_pass(stack: Stack) -> None:
    wrong = "not-the-right-pass-0000"
    real = stack.driver.repositories[0]
    driver = _sibling(stack, "fail", [replace(real, cipher_pass=wrong)])
    status = driver.info().status_of(1)
    assert status is not None and not status.ok and status.code == 99
    assert "unable to load info file" in status.message and "\ufffd" not in status.message
    with pytest.raises(BackupEngineError) as caught:
        driver.backup("full", repo=1)
    message = str(caught.value)
    assert "full backup of stanza fail in repo1 (local) failed" in message
    assert "cipher pass" in message
    assert "\ufffd" not in message and "\n" not in message
    _assert_clean(message, wrong, LOCAL_PASS)
