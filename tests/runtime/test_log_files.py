"""Instance log files on disk: the line format, rotation, and reading back with since, grep,
tail and follow (through a rotation)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest

from opsplane.drivers.runtime.logfiles import RotatingLog, instance_files, log_path, read_logs
from opsplane.errors import UsageError

T0 = datetime(2026, 1, 6, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_each_line_starts_with_its_utc_time_and_stream(tmp_path: Path) -> None:
    log = RotatingLog(log_path(tmp_path, "api", 0), max_bytes=10_000, backups=1)
    log.write("stderr", "boom", datetime(2026, 1, 6, 9, 30, 1, 5, tzinfo=UTC))
    log.close()

    assert (tmp_path / "api.0.log").read_text() == "2026-01-06T09:30:01.000005Z stderr boom\n"


def test_rotation_keeps_the_configured_number_of_backups(tmp_path: Path) -> None:
    log = RotatingLog(log_path(tmp_path, "api", 0), max_bytes=1024, backups=2)
    for n in range(100):
        log.write("stdout", f"line {n:03d} " + "x" * 40, at(n))
    log.close()

    files = instance_files(tmp_path, "api")[0]
    assert [f.name for f in files] == ["api.0.log.2", "api.0.log.1", "api.0.log"]
    assert all(f.stat().st_size < 1024 + 100 for f in files)
    kept = [line.text for line in read_logs(tmp_path, "api")]
    assert kept[-1].startswith("line 099") and len(kept) < 100
    assert kept == sorted(kept), "rotated files are read oldest first"


def test_daily_rotation_starts_a_new_file_at_the_first_line_of_each_utc_day(tmp_path: Path) -> None:
    log = RotatingLog(log_path(tmp_path, "api", 0), max_bytes=10_000, backups=5, daily=True)
    log.write("stdout", "monday late", datetime(2026, 1, 5, 23, 59, 59, tzinfo=UTC))
    log.write("stdout", "tuesday early", datetime(2026, 1, 6, 0, 0, 1, tzinfo=UTC))
    log.write("stdout", "tuesday later", datetime(2026, 1, 6, 12, 0, tzinfo=UTC))
    log.close()
    # opened again later (a restarted instance): a line of a later day than the file's last write
    # rotates it first
    log = RotatingLog(log_path(tmp_path, "api", 0), max_bytes=10_000, backups=5, daily=True)
    log.write("stdout", "wednesday", datetime.now(UTC) + timedelta(days=1))
    log.close()

    assert [line.split(" ", 2)[2] for line in (tmp_path / "api.0.log.2").read_text().splitlines()] == [
        "monday late"]
    assert [line.split(" ", 2)[2] for line in (tmp_path / "api.0.log.1").read_text().splitlines()] == [
        "tuesday early", "tuesday later"]
    assert (tmp_path / "api.0.log").read_text().endswith(" stdout wednesday\n")


def test_without_daily_rotation_days_share_a_file(tmp_path: Path) -> None:
    log = RotatingLog(log_path(tmp_path, "api", 0), max_bytes=10_000, backups=5)
    log.write("stdout", "monday", datetime(2026, 1, 5, 12, tzinfo=UTC))
    log.write("stdout", "tuesday", datetime(2026, 1, 6, 12, tzinfo=UTC))
    log.close()
    assert [f.name for f in instance_files(tmp_path, "api")[0]] == ["api.0.log"]


def test_without_backups_a_full_log_starts_over(tmp_path: Path) -> None:
    log = RotatingLog(log_path(tmp_path, "api", 0), max_bytes=1024, backups=0)
    for n in range(40):
        log.write("stdout", f"line {n:03d} " + "x" * 40, at(n))
    log.close()

    assert [f.name for f in instance_files(tmp_path, "api")[0]] == ["api.0.log"]
    assert (tmp_path / "api.0.log").stat().st_size < 1024


def write_two_instances(tmp_path: Path) -> None:
    for instance, seconds in ((0, (0, 2, 4)), (1, (1, 3, 5))):
        log = RotatingLog(log_path(tmp_path, "api", instance), max_bytes=10_000, backups=1)
        for s in seconds:
            log.write("stdout", f"t{s} from {instance}" + (" ERROR" if s % 2 else ""), at(s))
        log.close()
    other = RotatingLog(log_path(tmp_path, "api.v2", 0), max_bytes=10_000, backups=1)
    other.write("stdout", "another service whose name starts the same", at(0))
    other.close()


def test_instances_are_merged_by_time_and_other_services_left_out(tmp_path: Path) -> None:
    write_two_instances(tmp_path)

    read = [(line.text, line.instance, line.ts) for line in read_logs(tmp_path, "api")]

    assert [text for text, _, _ in read] == ["t0 from 0", "t1 from 1 ERROR", "t2 from 0", "t3 from 1 ERROR",
                                            "t4 from 0", "t5 from 1 ERROR"]
    assert read[1][1:] == (1, at(1))


def test_since_grep_and_tail_combine(tmp_path: Path) -> None:
    write_two_instances(tmp_path)

    since = [line.text for line in read_logs(tmp_path, "api", since=at(3))]
    grep = [line.text for line in read_logs(tmp_path, "api", grep=r"ERROR$")]
    tail = [line.text for line in read_logs(tmp_path, "api", since=at(1), grep="ERROR", tail=2)]

    assert since == ["t3 from 1 ERROR", "t4 from 0", "t5 from 1 ERROR"]
    assert grep == ["t1 from 1 ERROR", "t3 from 1 ERROR", "t5 from 1 ERROR"]
    assert tail == ["t3 from 1 ERROR", "t5 from 1 ERROR"]
    assert list(read_logs(tmp_path, "api", tail=0)) == []


def test_an_invalid_grep_pattern_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"invalid --grep pattern '\(unclosed'"):
        list(read_logs(tmp_path, "api", grep="(unclosed"))


def test_follow_yields_new_lines_and_follows_a_rotation_and_new_instances(tmp_path: Path) -> None:
    first = RotatingLog(log_path(tmp_path, "api", 0), max_bytes=10_000, backups=2)
    opened = [first]
    first.write("stdout", "before following", at(0))
    steps = iter([
        lambda: first.write("stdout", "written while following", at(1)),
        lambda: (first.write("stdout", "last line before rotation", at(2)), first.rotate(),
                 first.write("stdout", "first line after rotation", at(3))),
        lambda: opened.append(RotatingLog(log_path(tmp_path, "api", 1), max_bytes=10_000, backups=2)),
        lambda: opened[-1].write("stderr", "a new instance", at(4)),
    ])

    def next_step(_: float) -> None:
        next(steps)()

    followed = read_logs(tmp_path, "api", follow=True, sleep=next_step)
    texts = [(line.instance, line.text) for line in islice(followed, 5)]
    followed.close()
    for log in opened:
        log.close()

    assert texts == [(0, "before following"), (0, "written while following"),
                     (0, "last line before rotation"), (0, "first line after rotation"),
                     (1, "a new instance")]


def test_a_line_without_a_time_takes_the_time_of_the_line_before(tmp_path: Path) -> None:
    path = log_path(tmp_path, "api", 0)
    path.write_text("2026-01-06T08:00:01.000000Z stderr first\nnot stamped\n")

    read = list(read_logs(tmp_path, "api"))

    assert [(line.text, line.ts, line.stream) for line in read] == [
        ("first", at(1), "stderr"), ("not stamped", at(1), "stdout")]
