"""`logs -f` through rotations: every line exactly once and in order, however many rotations
happen between two looks of the follower, and whenever the writer writes."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from opsplane.drivers.runtime.logfiles import RotatingLog, log_path, read_logs

LINES = 8_000
# About 24 lines a file: some 330 rotations. The writer stays at most LEAD lines (about 8 files)
# ahead of the follower, within the BACKUPS kept, so every line is still on disk when read.
MAX_BYTES = 1_500
BACKUPS = 20
LEAD = 200


def test_a_slow_follower_reads_every_line_once_in_order_through_rotations(tmp_path: Path) -> None:
    log = RotatingLog(log_path(tmp_path, "api", 0), max_bytes=MAX_BYTES, backups=BACKUPS)
    log.write("stdout", "started", datetime.now(UTC))
    read = 0
    stop = threading.Event()

    def write() -> None:
        for n in range(LINES):
            while n - read > LEAD and not stop.is_set():
                time.sleep(0.001)
            log.write("stdout", f"line {n:05d} " + "x" * 20, datetime.now(UTC))

    writer = threading.Thread(target=write, daemon=True)
    deadline = time.monotonic() + 20

    def slowly(_: float) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.01)  # the writer gets up to LEAD lines ahead: several rotations

    seen: list[str] = []
    followed = read_logs(tmp_path, "api", follow=True, sleep=slowly)
    try:
        assert next(followed).text == "started"
        writer.start()
        for line in followed:
            seen.append(line.text)
            read = len(seen)
            if len(seen) == LINES:
                break
    except TimeoutError:
        pass
    finally:
        stop.set()
        followed.close()
        writer.join(5)
        log.close()
    expected = [f"line {n:05d} " + "x" * 20 for n in range(LINES)]
    missing = len(set(expected) - set(seen))
    assert len(seen) == LINES and missing == 0, \
        f"read {len(seen)} lines of {LINES}; {missing} missing, {len(seen) - len(set(seen))} twice"
    assert seen == expected


def test_rotations_between_two_looks_are_read_file_by_file(tmp_path: Path) -> None:
    # Between the follower's two looks, three rotations: the file it had open is now .log.3,
    # and .log.2 and .log.1 were written and rotated away without it ever seeing them as .log.
    log = RotatingLog(log_path(tmp_path, "api", 0), max_bytes=10_000, backups=5)
    log.write("stdout", "first", datetime.now(UTC))

    def three_rotations(_: float) -> None:
        for n in range(3):
            log.write("stdout", f"in file {n}", datetime.now(UTC))
            log.rotate()
        log.write("stdout", "in the current file", datetime.now(UTC))

    followed = read_logs(tmp_path, "api", follow=True, sleep=three_rotations)
    texts = [next(followed).text for _ in range(5)]
    followed.close()
    log.close()
    assert texts == ["first", "in file 0", "in file 1", "in file 2", "in the current file"]


def test_a_file_truncated_in_place_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = log_path(tmp_path, "api", 0)
    path.write_text("2026-01-06T08:00:01.000000Z stdout before\n")

    polls = []

    def truncate_and_write(_: float) -> None:
        polls.append(1)
        if len(polls) == 1:
            path.write_text("2026-01-06T08:00:02.000000Z stdout after\n")  # same file, shorter
        elif len(polls) > 5:
            raise TimeoutError("the line written after the truncation was never read")

    followed = read_logs(tmp_path, "api", follow=True, sleep=truncate_and_write)
    texts = [next(followed).text for _ in range(2)]
    followed.close()
    assert texts == ["before", "after"]
