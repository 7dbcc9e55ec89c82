"""What `serve`'s backup worker starts when: the largest kind of backup due, never a smaller one
right after a larger, and verification from the first slot after the first good backup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from opsplane.backup.policy import apply
from opsplane.backup.worker import Due, due_work
from opsplane.config.loader import loads

INVENTORY = loads("""\
version: 1
platform: {name: shop}
databases:
  shop-db: {port: 5432}
backup:
  encryption_key: env:BACKUP_KEY
  time_zone: Europe/Berlin
  repositories: {local: {}}
  policies:
    shop-db: {data_dir: /var/lib/postgresql/15/main}
""")
POLICY = apply(INVENTORY, "shop-db")  # full Sunday 01:00, diff 01:00 Monday-Saturday, incr hourly at :30
TZ = "Europe/Berlin"
# Tuesday 8 December 2026, 10:40 in Berlin
NOW = datetime(2026, 12, 8, 9, 40, tzinfo=UTC)
VERIFIED = datetime(2026, 12, 6, 2, 5, tzinfo=UTC)  # Sunday's verification, just after its slot


def row(kind: str, started: datetime, state: str = "complete") -> Any:
    return SimpleNamespace(kind=kind, started_at=started, finished_at=started + timedelta(minutes=2),
                           state=state)


def test_a_policy_that_never_ran_takes_a_full_backup_at_once() -> None:
    assert due_work(POLICY, [], None, tz=TZ, now=NOW) == [
        Due("shop-db", "full", datetime(2026, 12, 6, 0, 0, tzinfo=UTC))]  # Sunday 01:00 Berlin


def test_a_full_backup_stands_for_the_diff_and_incremental_of_its_hour() -> None:
    rows = [row("full", NOW - timedelta(minutes=5))]
    assert due_work(POLICY, rows, None, tz=TZ, now=NOW) == []


def test_the_hourly_incremental_falls_due_at_its_minute() -> None:
    rows = [row("diff", datetime(2026, 12, 8, 0, 0, tzinfo=UTC)),
            row("full", datetime(2026, 12, 6, 0, 0, tzinfo=UTC))]
    assert due_work(POLICY, rows, VERIFIED, tz=TZ, now=NOW) == [
        Due("shop-db", "incr", datetime(2026, 12, 8, 9, 30, tzinfo=UTC))]


def test_a_missed_diff_is_taken_before_the_incremental() -> None:
    rows = [row("full", datetime(2026, 12, 6, 0, 0, tzinfo=UTC))]  # Monday's and Tuesday's diff missed
    assert due_work(POLICY, rows, VERIFIED, tz=TZ, now=NOW) == [
        Due("shop-db", "diff", datetime(2026, 12, 8, 0, 0, tzinfo=UTC))]


def test_the_first_verification_waits_for_its_slot_after_the_first_good_backup() -> None:
    first = datetime(2026, 12, 6, 0, 0, tzinfo=UTC)  # finished 01:02 Berlin on Sunday, slot is 03:00
    rows = [row("incr", NOW - timedelta(minutes=10)), row("diff", datetime(2026, 12, 8, 0, 0, tzinfo=UTC)),
            row("full", first)]
    kinds = [work.kind for work in due_work(POLICY, rows, None, tz=TZ, now=NOW)]
    assert kinds == ["verify"]  # Sunday 03:00 has passed since
    on_sunday = datetime(2026, 12, 6, 1, 40, tzinfo=UTC)  # 02:40 Berlin: before the slot
    sunday = [row("incr", on_sunday - timedelta(minutes=10)), row("full", first)]
    assert due_work(POLICY, sunday, None, tz=TZ, now=on_sunday) == []
    assert due_work(POLICY, rows, NOW - timedelta(days=1), tz=TZ, now=NOW) == []


def test_a_failed_backup_does_not_count_for_verification() -> None:
    rows = [row("full", datetime(2026, 12, 6, 0, 0, tzinfo=UTC), state="failed")]
    assert [w.kind for w in due_work(POLICY, rows, None, tz=TZ, now=NOW)] == ["diff"]


def test_the_monthly_drill_falls_due_at_its_first_slot_after_the_first_good_backup() -> None:
    first = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    rows = [row("incr", NOW - timedelta(minutes=10)), row("diff", datetime(2026, 12, 8, 0, 0, tzinfo=UTC)),
            row("full", datetime(2026, 12, 6, 0, 0, tzinfo=UTC)), row("full", first)]
    due = due_work(POLICY, rows, VERIFIED, tz=TZ, now=NOW)
    assert due == [Due("shop-db", "drill", datetime(2026, 12, 1, 3, 0, tzinfo=UTC))]  # the 1st, 04:00 Berlin
    assert due_work(POLICY, rows, VERIFIED, tz=TZ, now=NOW, last_drill=datetime(2026, 12, 1, 3, 5,
                                                                                  tzinfo=UTC)) == []


def test_a_snapshot_of_a_restic_kept_engine_counts_as_its_full_backup() -> None:
    inv = loads("""\
version: 1
platform: {name: shop}
caches:
  sessions: {port: 6379}
backup:
  encryption_key: env:BACKUP_KEY
  repositories: {local: {}}
  policies:
    sessions: {schedule: "*/30 * * * *"}
""")
    sessions = apply(inv, "sessions")
    taken = [row("snapshot", datetime(2026, 12, 8, 9, 30, 5, tzinfo=UTC))]  # the 10:30 slot, Berlin
    assert due_work(sessions, taken, VERIFIED, tz=TZ, now=NOW) == []
    assert due_work(sessions, taken, VERIFIED, tz=TZ, now=NOW + timedelta(minutes=20)) == [
        Due("sessions", "full", datetime(2026, 12, 8, 10, 0, tzinfo=UTC))]
