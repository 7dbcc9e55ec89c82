"""Point-in-time recovery judged from the archiver and the repositories: a failing
archive_command breaks every repository from the last segment archived; a repository missing
segments the server archived breaks from when it was last seen complete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsplane.backup.archive import judge_archive
from opsplane.backup.engines import ArchiveState

T0 = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
SEG_5, SEG_6 = "000000010000000000000005", "000000010000000000000006"


def test_repositories_holding_every_archived_segment_are_complete() -> None:
    seen: dict[str, datetime] = {}
    state = ArchiveState(SEG_6, T0, None, {"local": SEG_6, "offsite": SEG_6})
    assert judge_archive(state, complete_at=seen, now=T0) == {}
    assert seen == {"local": T0, "offsite": T0}


def test_a_failing_archive_command_breaks_recovery_after_the_last_archived_segment() -> None:
    seen = {"local": T0, "offsite": T0}
    state = ArchiveState(SEG_5, T0 - timedelta(minutes=3), "archive_command failed for segment "
                         f"{SEG_6}", {"local": SEG_5, "offsite": SEG_5})
    broken = judge_archive(state, complete_at=seen, now=T0 + timedelta(minutes=5))
    assert set(broken) == {"local", "offsite"}
    since, reason = broken["offsite"]
    assert since == T0 - timedelta(minutes=3) and SEG_6 in reason


def test_a_repository_missing_segments_breaks_from_when_it_was_last_complete() -> None:
    seen: dict[str, datetime] = {}
    judge_archive(ArchiveState(SEG_5, T0, None, {"local": SEG_5, "offsite": SEG_5}), complete_at=seen, now=T0)
    later = T0 + timedelta(minutes=1)
    broken = judge_archive(ArchiveState(SEG_6, later, None, {"local": SEG_6, "offsite": SEG_5}),
                           complete_at=seen, now=later)
    assert list(broken) == ["offsite"]
    assert broken["offsite"][0] == T0 and "holds WAL up to " + SEG_5 in broken["offsite"][1]
    assert seen["local"] == later
