"""Retention: grandfather-father-son counts in a time zone, the recovery window, chains kept
whole, a minimum of good copies, reasons in words, and drops in an order safe to carry out."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsplane.backup.retention import GoodBackup, RetentionPlan, RetentionPolicy, plan_retention, window_words

DAY = 86400.0


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def nightly(first: date, last: date, hour: int = 1) -> list[GoodBackup]:
    """One full backup a night, named by its date."""
    days = (last - first).days + 1
    return [GoodBackup(f"{first + timedelta(days=n)}", datetime.combine(first + timedelta(days=n),
                       datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)) for n in range(days)]


def kept_ids(plan: RetentionPlan) -> set[str]:
    return {backup.id for backup in plan.keep}


# --- calendar counts ---------------------------------------------------------------------------

def test_forty_nightly_backups_under_daily_7_weekly_4_monthly_3() -> None:
    backups = nightly(date(2026, 10, 25), date(2026, 12, 3))
    assert len(backups) == 40
    plan = plan_retention(backups, RetentionPolicy(daily=7, weekly=4, monthly=3), utc(2026, 12, 3, 12))
    assert kept_ids(plan) == {
        "2026-12-03", "2026-12-02", "2026-12-01", "2026-11-30", "2026-11-29", "2026-11-28", "2026-11-27",
        "2026-11-22", "2026-11-15",  # the Sundays ending ISO weeks 47 and 46
        "2026-10-31",  # the newest of October
    }
    assert plan.summary() == "keeps 10 of 40 backups, drops 30"
    assert plan.decision("2026-12-03").reasons == (
        "the newest good backup", "newest of 2026-12-03 (daily 1 of 7)",
        "newest of week 2026-W49 (weekly 1 of 4)", "newest of 2026-12 (monthly 1 of 3)")
    assert plan.decision("2026-11-30").reasons == ("newest of 2026-11-30 (daily 4 of 7)",
                                                   "newest of 2026-11 (monthly 2 of 3)")
    assert plan.decision("2026-11-15").reasons == ("newest of week 2026-W46 (weekly 4 of 4)",)
    assert plan.decision("2026-11-14").reasons == (
        "no rule keeps it (daily 7, weekly 4, monthly 3, at least 2)",)


def test_only_the_newest_backup_of_a_day_counts_for_that_day() -> None:
    backups = [GoodBackup(f"b{hour}", utc(2026, 12, 3, hour)) for hour in range(0, 24, 6)]
    backups += [GoodBackup("yesterday", utc(2026, 12, 2, 22))]
    plan = plan_retention(backups, RetentionPolicy(daily=2, min_good=1), utc(2026, 12, 4))
    assert kept_ids(plan) == {"b18", "yesterday"}


def test_days_are_counted_in_the_policys_time_zone() -> None:
    # 23:30 UTC on the 2nd is 00:30 on the 3rd in Berlin: both are the 3rd's there
    backups = [GoodBackup("late", utc(2026, 12, 2, 23, 30)), GoodBackup("early", utc(2026, 12, 2, 22, 30)),
               GoodBackup("morning", utc(2026, 12, 3, 9))]
    in_utc = plan_retention(backups, RetentionPolicy(daily=2, min_good=0), utc(2026, 12, 4))
    in_berlin = plan_retention(backups, RetentionPolicy(daily=2, min_good=0, timezone="Europe/Berlin"),
                               utc(2026, 12, 4))
    assert kept_ids(in_utc) == {"morning", "late"}
    assert kept_ids(in_berlin) == {"morning", "early"}
    assert in_berlin.decision("early").reasons == ("newest of 2026-12-02 (daily 2 of 2)",)


def test_hourly_and_yearly_counts() -> None:
    backups = [GoodBackup(f"h{n}", utc(2026, 12, 3, 10) - timedelta(minutes=20 * n)) for n in range(9)]
    backups += [GoodBackup("2025", utc(2025, 6, 1)), GoodBackup("2024", utc(2024, 6, 1))]
    plan = plan_retention(backups, RetentionPolicy(hourly=3, yearly=2, min_good=0), utc(2026, 12, 3, 11))
    # 10:00, 09:40 09:20 09:00, 08:40 ...: the newest of the 10, 09 and 08 o'clock hours
    assert kept_ids(plan) == {"h0", "h1", "h4", "2025"}
    assert plan.decision("h4").reasons == ("newest of 2026-12-03 08:00 (hourly 3 of 3)",)
    assert plan.decision("2025").reasons == ("newest of 2025 (yearly 2 of 2)",)


def test_keep_last_keeps_the_newest_whatever_their_dates() -> None:
    backups = nightly(date(2026, 11, 1), date(2026, 11, 10))
    plan = plan_retention(backups, RetentionPolicy(keep_last=3), utc(2026, 12, 1))
    assert kept_ids(plan) == {"2026-11-10", "2026-11-09", "2026-11-08"}
    assert plan.decision("2026-11-08").reasons == ("one of the last 3 (3 of 3)",)


# --- chains ------------------------------------------------------------------------------------

def pgbackrest_week() -> list[GoodBackup]:
    """A full on Sunday, a differential on Wednesday and incrementals every other night."""
    return [
        GoodBackup("full-sun", utc(2026, 11, 29, 1), "full"),
        GoodBackup("incr-mon", utc(2026, 11, 30, 1), "incr", "full-sun"),
        GoodBackup("incr-tue", utc(2026, 12, 1, 1), "incr", "incr-mon"),
        GoodBackup("diff-wed", utc(2026, 12, 2, 1), "diff", "full-sun"),
        GoodBackup("incr-thu", utc(2026, 12, 3, 1), "incr", "diff-wed"),
        GoodBackup("incr-fri", utc(2026, 12, 4, 1), "incr", "incr-thu"),
    ]


def test_a_kept_incremental_keeps_its_chain_back_to_the_full() -> None:
    plan = plan_retention(pgbackrest_week(), RetentionPolicy(keep_last=1, min_good=1), utc(2026, 12, 4, 12))
    assert kept_ids(plan) == {"incr-fri", "incr-thu", "diff-wed", "full-sun"}
    assert plan.decision("incr-thu").reasons == ("a kept incremental backup (incr-fri) depends on it",)
    assert plan.decision("diff-wed").reasons == ("a kept incremental backup (incr-thu) depends on it",)
    assert plan.decision("full-sun").reasons == ("a kept differential backup (diff-wed) depends on it",)
    assert [backup.id for backup in plan.drop] == ["incr-tue", "incr-mon"]


def test_drops_come_dependants_first() -> None:
    week = pgbackrest_week()
    later = [GoodBackup("full-next", utc(2026, 12, 6, 1), "full")]
    plan = plan_retention(week + later, RetentionPolicy(keep_last=1, min_good=1), utc(2026, 12, 6, 12))
    order = [backup.id for backup in plan.drop]
    assert set(order) == {backup.id for backup in week}
    for backup in week:
        if backup.depends_on is not None:
            assert order.index(backup.id) < order.index(backup.depends_on)


def test_a_backup_depending_on_one_not_given_stops_the_plan() -> None:
    orphan = [GoodBackup("incr", utc(2026, 12, 3), "incr", "gone")]
    with pytest.raises(ValueError, match="backup incr depends on gone, which is not among the good backups"):
        plan_retention(orphan, RetentionPolicy(), utc(2026, 12, 4))


def test_backups_depending_on_each_other_in_a_loop_are_refused() -> None:
    loop = [GoodBackup("a", utc(2026, 12, 3), "incr", "b"), GoodBackup("b", utc(2026, 12, 2), "incr", "a")]
    with pytest.raises(ValueError, match="depend on each other in a loop"):
        plan_retention(loop, RetentionPolicy(), utc(2026, 12, 4))


# --- recovery window ---------------------------------------------------------------------------

def test_the_recovery_window_keeps_the_full_before_it_and_everything_after() -> None:
    backups = [GoodBackup(f"full-{n}", utc(2026, 11, 1, 1) + timedelta(days=7 * n)) for n in range(5)]
    backups += [GoodBackup(f"incr-{n}", backups[3].finished + timedelta(days=n), "incr",
                           f"incr-{n - 1}" if n > 1 else "full-3") for n in range(1, 7)]
    now = utc(2026, 11, 30, 12)  # window of 7 days opens 2026-11-23 12:00
    plan = plan_retention(backups, RetentionPolicy(recovery_window=7 * DAY, min_good=1), now)
    # full-3 (22 Nov) is the newest full before the window; incr-1 (23 Nov 01:00) is before it too
    assert kept_ids(plan) == {"full-3", "incr-1", "incr-2", "incr-3", "incr-4", "incr-5", "incr-6", "full-4"}
    assert "restores to the start of the 7-day recovery window" in plan.decision("full-3").reasons
    assert plan.decision("incr-1").reasons[0] == "needed to restore to points in the 7-day recovery window"
    assert plan.decision("incr-2").reasons[0] == "inside the 7-day recovery window"
    assert [backup.id for backup in plan.drop] == ["full-2", "full-1", "full-0"]


def test_min_good_keeps_the_newest_when_everything_is_older_than_the_window() -> None:
    backups = nightly(date(2026, 9, 1), date(2026, 9, 10))
    plan = plan_retention(backups, RetentionPolicy(recovery_window=30 * DAY, min_good=3), utc(2026, 12, 3))
    assert kept_ids(plan) == {"2026-09-10", "2026-09-09", "2026-09-08"}
    assert plan.decision("2026-09-10").reasons == (
        "the newest good backup", "restores to the start of the 30-day recovery window")
    assert plan.decision("2026-09-09").reasons == ("minimum of 3 good copies",)


def test_min_good_counts_a_chain_it_keeps() -> None:
    plan = plan_retention(pgbackrest_week(), RetentionPolicy(min_good=3), utc(2026, 12, 4, 12))
    # the newest alone keeps four through its chain: no more are needed
    assert kept_ids(plan) == {"incr-fri", "incr-thu", "diff-wed", "full-sun"}


def test_fewer_backups_than_min_good_are_all_kept() -> None:
    backups = nightly(date(2026, 12, 1), date(2026, 12, 2))
    plan = plan_retention(backups, RetentionPolicy(min_good=5), utc(2026, 12, 3))
    assert kept_ids(plan) == {"2026-12-01", "2026-12-02"}
    assert plan.drop == ()


def test_no_backups_make_an_empty_plan() -> None:
    plan = plan_retention([], RetentionPolicy(daily=7), utc(2026, 12, 3))
    assert plan.decisions == plan.drop == plan.keep == ()
    assert plan.summary() == "keeps 0 of 0 backups, drops 0"


# --- the policy and its input ------------------------------------------------------------------

def test_policy_describes_itself() -> None:
    policy = RetentionPolicy(keep_last=3, daily=7, weekly=4, recovery_window=30 * DAY)
    assert policy.describe() == "last 3, daily 7, weekly 4, 30-day recovery window, at least 2"
    assert [window_words(s) for s in (36 * 3600, 5400, 45, 90.5)] == ["36-hour", "90-minute", "45-second",
                                                                      "90.5-second"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("daily", -1, "retention daily must be a whole number of 0 or more, got -1"),
    ("min_good", 1.5, "retention min_good must be a whole number"),
    ("recovery_window", 0, "recovery_window must be a positive number of seconds"),
    ("timezone", "Europe/Atlantis", "unknown time zone 'Europe/Atlantis'"),
])
def test_a_policy_that_cannot_work_is_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetentionPolicy(**{field: value})  # type: ignore[arg-type]


def test_duplicate_ids_and_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="backup a is given twice"):
        plan_retention([GoodBackup("a", utc(2026, 12, 1)), GoodBackup("a", utc(2026, 12, 2))],
                       RetentionPolicy(), utc(2026, 12, 3))
    with pytest.raises(ValueError, match="backup a's finish time .* has no UTC offset"):
        plan_retention([GoodBackup("a", datetime(2026, 12, 1))], RetentionPolicy(), utc(2026, 12, 3))
    with pytest.raises(ValueError, match=r"now \(2026-12-03T00:00:00\) has no UTC offset"):
        plan_retention([], RetentionPolicy(), datetime(2026, 12, 3))


# --- properties --------------------------------------------------------------------------------

@st.composite
def histories(draw: st.DrawFn) -> list[GoodBackup]:
    """Backups as engines make them: fulls, differentials on the last full, incrementals on the
    last of the chain, and self-contained snapshots, hours to days apart."""
    count = draw(st.integers(0, 40))
    at = utc(2026, 1, 1) + timedelta(hours=draw(st.integers(0, 5000)))
    backups: list[GoodBackup] = []
    last_full: str | None = None
    last_chain: str | None = None
    for n in range(count):
        at += timedelta(hours=draw(st.integers(1, 24 * 20)))
        kind = draw(st.sampled_from(["full", "diff", "incr", "snapshot"]))
        if kind in ("diff", "incr") and last_full is None:
            kind = "full"
        parent = last_full if kind == "diff" else last_chain if kind == "incr" else None
        backups.append(GoodBackup(f"b{n:02d}", at, kind, parent))  # type: ignore[arg-type]
        if kind == "full":
            last_full = f"b{n:02d}"
        if kind != "snapshot":
            last_chain = f"b{n:02d}"
    return backups


policies = st.builds(
    RetentionPolicy, keep_last=st.integers(0, 5), hourly=st.integers(0, 3), daily=st.integers(0, 8),
    weekly=st.integers(0, 5), monthly=st.integers(0, 4), yearly=st.integers(0, 2),
    recovery_window=st.none() | st.floats(3600, 90 * DAY), min_good=st.integers(0, 6),
    timezone=st.sampled_from(["UTC", "Europe/Berlin", "Pacific/Auckland"]),
)
nows = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2029, 1, 1), timezones=st.just(UTC))


@settings(max_examples=300, deadline=None)
@given(histories(), policies, nows)
def test_plans_keep_chains_whole_a_minimum_and_the_newest(backups: list[GoodBackup], policy: RetentionPolicy,
                                                          now: datetime) -> None:
    plan = plan_retention(backups, policy, now)
    by_id = {backup.id: backup for backup in backups}
    kept = kept_ids(plan)
    assert len(plan.decisions) == len(backups)
    assert kept | {backup.id for backup in plan.drop} == set(by_id)
    assert not kept & {backup.id for backup in plan.drop}
    for backup_id in kept:
        if by_id[backup_id].depends_on is not None:
            assert by_id[backup_id].depends_on in kept
    assert len(kept) >= min(policy.min_good, len(backups))
    if backups:
        assert max(backups, key=lambda b: b.finished).id in kept
    order = [backup.id for backup in plan.drop]
    for position, backup_id in enumerate(order):
        assert by_id[backup_id].depends_on not in order[:position]
    assert all(decision.reasons for decision in plan.decisions)


@settings(max_examples=100, deadline=None)
@given(histories(), policies, nows, st.randoms(use_true_random=False))
def test_plans_are_deterministic_whatever_the_input_order(backups: list[GoodBackup], policy: RetentionPolicy,
                                                          now: datetime, shuffle: random.Random) -> None:
    first = plan_retention(backups, policy, now)
    shuffled = list(backups)
    shuffle.shuffle(shuffled)
    assert plan_retention(shuffled, policy, now) == first
