"""Reading what pgBackRest 2.45 printed (captured from the real tool into data/): `info
--output=json` for two repositories, a wrong cipher pass and a missing stanza; `verify` of a
sound repository, one with a flipped byte and one with a file gone. Also the configuration
the driver writes, and its archive_command."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsplane.drivers.backup.base import BackupEngineError, Repository, S3Location
from opsplane.drivers.backup.pgbackrest import PgBackRest
from opsplane.drivers.backup.pgbackrest_info import explain_failure, parse_info, parse_verify

DATA = Path(__file__).parent / "data"


def _read(name: str) -> str:
    return (DATA / name).read_text(errors="replace")


def test_info_of_two_repositories() -> None:
    info = parse_info(_read("info_two_repos.json"), "demo", {1: "local", 2: "offsite"})
    assert info.status_code == 0 and info.status_message == "ok" and not info.backup_running
    assert [(s.repo, s.repository, s.ok) for s in info.repos] == [(1, "local", True), (2, "offsite", True)]
    assert [(b.repo, b.kind) for b in info.backups] == [(1, "full"), (2, "full"), (1, "incr"), (2, "diff")]
    full, _, incr, diff = info.backups
    assert full.label == "20261206-085218F" and full.prior is None and full.references == ()
    assert full.started == datetime(2026, 12, 6, 8, 52, 18, tzinfo=UTC)
    assert full.finished == datetime(2026, 12, 6, 8, 52, 21, tzinfo=UTC)
    assert (full.size_bytes, full.repo_bytes, full.repo_delta_bytes) == (23213634, 2849136, 2849136)
    assert (full.wal_start, full.wal_stop) == ("000000010000000000000002",) * 2
    assert (full.lsn_start, full.lsn_stop) == ("0/2000028", "0/2000100")
    assert full.pg_version == "15" and full.error is False
    assert incr.prior == full.label and incr.references == (full.label,)
    assert incr.delta_bytes < incr.size_bytes and incr.repo_delta_bytes < incr.repo_bytes
    assert diff.label.endswith("D") and diff.repository == "offsite"
    assert info.backup(incr.label) == incr and info.backup(incr.label, 2) is None
    assert info.backups_in(2) == (info.backups[1], diff)
    assert [(a.repo, a.archive_id, a.wal_min, a.wal_max) for a in info.archives] == [
        (1, "15-1", "000000010000000000000001", "000000010000000000000008"),
        (2, "15-1", "000000010000000000000001", "000000010000000000000008"),
    ]


def test_info_with_a_wrong_cipher_pass_is_a_status_not_a_failure() -> None:
    info = parse_info(_read("info_wrong_cipher.json"), "demo")
    status = info.status_of(1)
    assert status is not None and status.code == 99 and not status.ok
    assert status.message.startswith("[FormatError] unable to load info file")
    assert "\ufffd" not in status.message
    assert info.backups == () and info.archives == ()


def test_info_of_a_stanza_not_created() -> None:
    info = parse_info(_read("info_missing_stanza.json"), "nothing")
    status = info.status_of(1)
    assert status is not None and status.missing and status.message == "missing stanza path"


def test_info_that_is_not_json_or_lacks_the_stanza() -> None:
    with pytest.raises(BackupEngineError, match="not the JSON"):
        parse_info("ERROR: something", "demo")
    with pytest.raises(BackupEngineError, match="does not mention stanza other"):
        parse_info(_read("info_two_repos.json"), "other")


def test_verify_of_a_sound_repository() -> None:
    report = parse_verify(_read("verify_ok.txt"), 1, "local")
    assert report.ok and report.status == "ok" and report.problems == ()


def test_verify_names_the_damaged_file_and_the_backups_it_spoils() -> None:
    report = parse_verify(_read("verify_corrupt.txt"), 1)
    assert not report.ok and report.status == "error" and report.repository == "repo1"
    assert report.problems == (
        "invalid checksum '20261206-085218F/pg_data/base/5/2838.zst'",
        "backup 20261206-085218F is invalid",
        "backup 20261206-085218F: checksum invalid: 1",
        "backup 20261206-085218F_20261206-085224I is invalid",
        "backup 20261206-085218F_20261206-085224I: checksum invalid: 1",
    )


def test_verify_names_a_missing_file() -> None:
    report = parse_verify(_read("verify_missing.txt"), 1)
    assert report.problems[0] == "file missing '20261206-085218F/pg_data/base/5/2838.zst'"
    assert "backup 20261206-085218F: missing: 1" in report.problems


def _driver(tmp_path: Path) -> PgBackRest:
    s3 = S3Location(endpoint="127.0.0.1:9443", bucket="bkt", region="us-east-1",
                    access_key="AKIAEXAMPLE", secret_key="s3-secret-value", ca_file="/etc/ca.pem")
    return PgBackRest(
        "main", data_dir="/srv/pg/data", port=5433, socket_dir="/run/pg",
        config_dir=tmp_path / "cfg", process_max=3,
        repositories=[Repository("local", "/srv/backup", "pass-one"),
                      Repository("offsite", "pg/main", "pass-two", s3=s3, offsite=True)],
    )


def test_the_configuration_keeps_secrets_apart(tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    main = driver.configure().read_text()
    for secret in ("pass-one", "pass-two", "s3-secret-value", "AKIAEXAMPLE"):
        assert secret not in main
    for line in ("repo1-type=posix", "repo1-path=/srv/backup", "repo1-cipher-type=aes-256-cbc",
                 "repo2-type=s3", "repo2-path=/pg/main", "repo2-s3-endpoint=127.0.0.1",
                 "repo2-storage-port=9443", "repo2-s3-uri-style=path",
                 "repo2-storage-ca-file=/etc/ca.pem", "repo2-storage-verify-tls=y",
                 "compress-type=zst", "start-fast=y", "process-max=3", "[main]",
                 "pg1-path=/srv/pg/data", "pg1-port=5433", "pg1-socket-path=/run/pg"):
        assert line in main.splitlines()
    secrets = driver.include_dir / "secrets.conf"
    text = secrets.read_text()
    assert "repo1-cipher-pass=pass-one" in text and "repo2-s3-key-secret=s3-secret-value" in text
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE(driver.include_dir.stat().st_mode) == 0o700
    assert secrets.stat().st_uid == os.geteuid()


def test_archive_command_and_settings(tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    cfg = tmp_path / "cfg"
    assert driver.archive_command() == (
        f"{driver.executable} --config={cfg}/pgbackrest.conf --config-include-path={cfg}/conf.d "
        "--stanza=main archive-push %p")
    assert driver.archive_settings() == {"archive_mode": "on", "wal_level": "replica",
                                         "archive_timeout": "30",
                                         "archive_command": driver.archive_command()}


def test_repositories_by_number_or_name(tmp_path: Path) -> None:
    driver = _driver(tmp_path)
    assert driver.repo_index(2) == driver.repo_index("offsite") == 2
    with pytest.raises(BackupEngineError, match=r"no repository 'nearby'; it has 1 \(local\)"):
        driver.repo_index("nearby")
    with pytest.raises(BackupEngineError, match="no repository 3"):
        driver.repo_index(3)


def test_a_secret_with_a_line_break_is_refused_without_showing_it(tmp_path: Path) -> None:
    driver = PgBackRest("main", data_dir="/d", port=1, socket_dir="/s", config_dir=tmp_path,
                        repositories=[Repository("local", "/r", "bad\npass")])
    with pytest.raises(BackupEngineError, match="repo1-cipher-pass of stanza main") as caught:
        driver.configure()
    assert "bad" not in str(caught.value).replace("contains", "")


def test_a_failure_explained_on_one_line_without_secrets() -> None:
    printed = (
        "WARN: something earlier\n"
        "ERROR: [095]: unable to load info file '/r/archive/main/archive.info':\n"
        "       CryptoError: unable to flush\n"
        "       HINT: is or was the repo encrypted?\n"
        "       CryptoError: unable to flush\n"
        "       FormatError: key/value found outside of section at line 1: \x07\ufffd\ufffdz\n"
        "       token s3cr3t in a message\n"
    )
    text = explain_failure(printed, ["s3cr3t", ""])
    assert text.startswith("[095] unable to load info file '/r/archive/main/archive.info': | "
                           "CryptoError: unable to flush | HINT: is or was the repo encrypted? | ")
    assert text.count("CryptoError: unable to flush") == 1
    assert "token *** in a message" in text and "s3cr3t" not in text
    assert "\ufffd" not in text and "\x07" not in text and "\n" not in text
    assert text.endswith("is its cipher pass the one it was created with?")
    assert explain_failure("all fine\n") == ""
