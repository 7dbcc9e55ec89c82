"""3-2-1 and freshness: copies, media and offsite counted from the repositories holding a good
backup, each rule not met named in a sentence, the RPO measured from the newest backup or the
continuous archive, and whether a restore time is possible or why not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsplane.backup.compliance import RepositoryCopy, assess, duration_words, recoverable

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)
HOUR = 3600.0


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def local(finished: datetime | None = None, **more: object) -> RepositoryCopy:
    return RepositoryCopy("local", "disk", False, finished, **more)  # type: ignore[arg-type]


def offsite(finished: datetime | None = None, **more: object) -> RepositoryCopy:
    return RepositoryCopy("offsite", "object-store", True, finished, **more)  # type: ignore[arg-type]


# --- 3-2-1 -------------------------------------------------------------------------------------

def test_live_local_disk_and_an_offsite_bucket_meet_321() -> None:
    verdict = assess([local(ago(minutes=30)), offsite(ago(minutes=40))], rpo=HOUR, now=NOW)
    assert verdict.copies == ("live", "local", "offsite")
    assert verdict.media == ("disk", "object-store")
    assert verdict.offsite == ("offsite",)
    assert verdict.violations == ()
    assert verdict.meets_321


def test_an_offsite_repository_without_a_good_backup_is_named() -> None:
    verdict = assess([local(ago(minutes=30)), offsite(None)], rpo=HOUR, now=NOW)
    assert verdict.violations == (
        "only 2 copies (live, local): 3 wanted",
        "all copies on one medium (disk)",
        "no offsite copy: offsite has no good backup",
    )
    assert not verdict.meets_321


def test_no_repository_offsite_is_said_so() -> None:
    second_disk = RepositoryCopy("nas", "disk", False, ago(hours=2))
    verdict = assess([local(ago(minutes=30)), second_disk], rpo=HOUR, now=NOW)
    assert verdict.copies == ("live", "local", "nas")
    assert verdict.violations == ("all copies on one medium (disk)",
                                  "no offsite copy: no repository is offsite")


def test_an_offsite_disk_is_offsite_but_not_a_second_medium() -> None:
    remote_disk = RepositoryCopy("dr-site", "disk", True, ago(hours=1))
    verdict = assess([local(ago(minutes=30)), remote_disk], rpo=HOUR, now=NOW)
    assert verdict.violations == ("all copies on one medium (disk)",)


def test_with_no_repositories_only_the_live_data_is_counted() -> None:
    verdict = assess([], rpo=HOUR, now=NOW)
    assert verdict.copies == ("live",)
    assert verdict.violations == ("only 1 copy (live): 3 wanted", "all copies on one medium (disk)",
                                  "no offsite copy: no repository is offsite")
    assert verdict.freshness == ()
    assert not verdict.fresh


def test_a_stale_copy_still_counts_for_321() -> None:
    verdict = assess([local(ago(days=3)), offsite(ago(days=9))], rpo=HOUR, now=NOW)
    assert verdict.meets_321
    assert [f.repository for f in verdict.stale] == ["local", "offsite"]


def test_the_live_medium_can_be_another() -> None:
    verdict = assess([local(ago(minutes=5))], rpo=HOUR, now=NOW, live_medium="object-store")
    assert verdict.media == ("object-store", "disk")


# --- freshness ---------------------------------------------------------------------------------

def test_freshness_says_the_age_against_the_rpo() -> None:
    verdict = assess([local(ago(hours=2, minutes=5)), offsite(ago(minutes=20))], rpo=HOUR, now=NOW)
    stale, fresh = verdict.freshness
    assert stale.sentence == "newest good copy 2 h 5 min old, RPO 1 h"
    assert (stale.age, stale.rpo, stale.stale, stale.measured) == (7500, HOUR, True, "backup")
    assert fresh.sentence == "newest good copy 20 min old, RPO 1 h"
    assert not fresh.stale
    assert verdict.fresh


def test_a_repository_without_a_copy_is_stale() -> None:
    (verdict,) = assess([offsite(None)], rpo=HOUR, now=NOW).freshness
    assert verdict.stale and verdict.age is None and verdict.newest is None
    assert verdict.sentence == "no good copy in offsite, RPO 1 h"


def test_the_archive_measures_the_rpo_when_it_is_newer() -> None:
    copy = local(ago(hours=20), archived_until=ago(minutes=3))
    (verdict,) = assess([copy], rpo=5 * 60, now=NOW).freshness
    assert verdict.measured == "archive"
    assert verdict.newest == ago(minutes=3)
    assert not verdict.stale
    assert verdict.sentence == "newest archived point 3 min old, RPO 5 min"


def test_a_stalled_archive_is_stale_when_the_backup_is_too() -> None:
    copy = local(ago(hours=20), archived_until=ago(hours=21))
    (verdict,) = assess([copy], rpo=5 * 60, now=NOW).freshness
    assert verdict.measured == "backup"
    assert verdict.stale
    assert verdict.sentence == "newest good copy 20 h old, RPO 5 min"


def test_a_copy_exactly_at_the_rpo_is_fresh() -> None:
    (verdict,) = assess([local(ago(hours=1))], rpo=HOUR, now=NOW).freshness
    assert not verdict.stale


def test_assess_refuses_what_it_cannot_judge() -> None:
    with pytest.raises(ValueError, match="an RPO must be a positive number of seconds"):
        assess([], rpo=0, now=NOW)
    with pytest.raises(ValueError, match="now .* has no UTC offset"):
        assess([], rpo=HOUR, now=datetime(2026, 12, 3))
    with pytest.raises(ValueError, match="repository local is given twice"):
        assess([local(ago(hours=1)), local(ago(hours=2))], rpo=HOUR, now=NOW)


@pytest.mark.parametrize(("seconds", "words"), [
    (0, "0 s"), (45, "45 s"), (150, "2 min 30 s"), (1200, "20 min"), (3600, "1 h"), (7500, "2 h 5 min"),
    (86400, "1 day"), (3 * 86400 + 4 * 3600 + 59, "3 days 4 h"),
])
def test_durations_read_as_words(seconds: float, words: str) -> None:
    assert duration_words(seconds) == words


# --- restoring to a time -----------------------------------------------------------------------

NIGHTLY = [datetime(2026, 11, day, 1, tzinfo=UTC) for day in range(3, 31)]


def test_a_time_before_the_oldest_backup_cannot_be_restored() -> None:
    answer = recoverable(datetime(2026, 11, 2, 12, tzinfo=UTC), NIGHTLY)
    assert not answer.ok
    assert answer.reason == "before the oldest backup (2026-11-03 01:00 UTC)"


def test_a_time_after_the_newest_recoverable_point_cannot_be_restored() -> None:
    window = (NIGHTLY[0], datetime(2026, 11, 30, 9, 15, 30, tzinfo=UTC))
    answer = recoverable(datetime(2026, 11, 30, 10, tzinfo=UTC), NIGHTLY, window)
    assert not answer.ok
    assert answer.reason == "after the newest recoverable point (2026-11-30 09:15:30 UTC)"


def test_a_backups_own_time_restores_without_an_archive() -> None:
    answer = recoverable(datetime(2026, 11, 10, 1, tzinfo=UTC), NIGHTLY)
    assert answer.ok
    assert answer.base == datetime(2026, 11, 10, 1, tzinfo=UTC)


def test_a_time_between_backups_needs_the_archive() -> None:
    at = datetime(2026, 11, 10, 14, tzinfo=UTC)
    without = recoverable(at, NIGHTLY)
    assert not without.ok
    assert without.reason == ("between backups and nothing is archived continuously: the nearest point "
                              "before it is the backup finished at 2026-11-10 01:00 UTC")
    with_archive = recoverable(at, NIGHTLY, (NIGHTLY[0], datetime(2026, 11, 30, 9, tzinfo=UTC)))
    assert with_archive.ok
    assert with_archive.base == datetime(2026, 11, 10, 1, tzinfo=UTC)
    assert with_archive.reason == ("the backup finished at 2026-11-10 01:00 UTC and the archive after it "
                                   "restore to it")


def test_an_archive_that_starts_after_the_base_backup_leaves_a_gap() -> None:
    window = (datetime(2026, 11, 10, 6, tzinfo=UTC), datetime(2026, 11, 30, 9, tzinfo=UTC))
    answer = recoverable(datetime(2026, 11, 10, 14, tzinfo=UTC), NIGHTLY, window)
    assert not answer.ok
    assert answer.reason.startswith("the archive starts at 2026-11-10 06:00 UTC, after the backup")


def test_an_archive_that_ended_early_says_when() -> None:
    window = (NIGHTLY[0], datetime(2026, 11, 20, 9, tzinfo=UTC))
    answer = recoverable(datetime(2026, 11, 25, 14, tzinfo=UTC), NIGHTLY, window)
    assert not answer.ok
    assert answer.reason.startswith("the archive ends at 2026-11-20 09:00 UTC")


def test_no_backups_restore_nothing() -> None:
    answer = recoverable(NOW, [])
    assert not answer.ok and answer.reason == "there is no good backup to restore from"


def test_an_archive_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="the archive ends .* before it starts"):
        recoverable(NOW, NIGHTLY, (NOW, NOW - timedelta(hours=1)))


@given(st.datetimes(min_value=datetime(2026, 10, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)))
def test_with_an_archive_over_all_backups_every_time_between_oldest_and_newest_point_restores(
        at: datetime) -> None:
    end = datetime(2026, 12, 1, 8, tzinfo=UTC)
    answer = recoverable(at, NIGHTLY, (NIGHTLY[0], end))
    assert answer.ok == (NIGHTLY[0] <= at <= end)
    if answer.ok:
        assert answer.base is not None and answer.base <= at
