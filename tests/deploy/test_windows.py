"""Deployment windows: the manual's production hours, freezes that close them, daylight-saving
changes in the policy's zone, and a next opening that is always open with nothing open before it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from opsplane.deploy.windows import (
    WEEKDAYS,
    EventFreeze,
    Freezes,
    HolidayFreeze,
    WeeklyFreeze,
    WeeklyWindow,
    WindowError,
    WindowPolicy,
    decide,
    default_policies,
    policy_for,
)

PRODUCTION = default_policies()["production"]
BLACK_FRIDAY = EventFreeze(name="black-friday", start=datetime(2026, 11, 26), end=datetime(2026, 12, 1))
SHOP_PRODUCTION = PRODUCTION.model_copy(update={"freezes": PRODUCTION.freezes.model_copy(update={
    "events": [BLACK_FRIDAY],
    "holidays": [HolidayFreeze(name="christmas", dates=[date(2026, 12, 22), date(2026, 12, 23)])],
})})
BERLIN = WindowPolicy(
    timezone="Europe/Berlin",
    windows=[WeeklyWindow(days=["tue", "wed", "thu"], start=time(10), end=time(16))],
    freezes=Freezes(weekly=[WeeklyFreeze(name="weekend", start_day="fri", start=time(12), end_day="mon")]),
)
SUNDAY_NIGHTS = WindowPolicy(timezone="Europe/Berlin", windows=[WeeklyWindow(days=["sun"], start=time(2),
                                                                             end=time(4))])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("at", "allowed", "next_open", "blocking"), [
    (utc(2026, 12, 8, 9, 59), False, utc(2026, 12, 8, 10), "window"),  # Tuesday, before the window
    (utc(2026, 12, 8, 10), True, utc(2026, 12, 8, 10), None),
    (utc(2026, 12, 10, 15, 59), True, utc(2026, 12, 10, 15, 59), None),  # Thursday, its last minute
    (utc(2026, 12, 10, 16), False, utc(2026, 12, 15, 10), "window"),
    (utc(2026, 12, 11, 11), False, utc(2026, 12, 15, 10), "window"),  # Friday morning: no window
    (utc(2026, 12, 11, 12), False, utc(2026, 12, 15, 10), "weekend"),
    (utc(2026, 12, 13, 18), False, utc(2026, 12, 15, 10), "weekend"),  # Sunday
    (utc(2026, 12, 14, 10), False, utc(2026, 12, 15, 10), "window"),  # Monday
])
def test_production_deploys_tuesday_to_thursday_10_to_16_utc(at: datetime, allowed: bool, next_open: datetime,
                                                              blocking: str | None) -> None:
    decision = decide(PRODUCTION, at)

    assert (decision.allowed, decision.next_open, decision.blocking) == (allowed, next_open, blocking)


def test_the_reasons_read_as_sentences() -> None:
    outside = decide(PRODUCTION, utc(2026, 12, 3, 17))
    weekend = decide(PRODUCTION, utc(2026, 12, 5, 9))
    inside = decide(PRODUCTION, utc(2026, 12, 8, 11))

    assert outside.reason == ("outside the deployment window (Tue-Thu 10:00-16:00 UTC); "
                              "the next opens Tue 2026-12-08 10:00 UTC")
    assert weekend.reason == ("frozen: weekend until Mon 2026-12-07 00:00 UTC; "
                              "the next opens Tue 2026-12-08 10:00 UTC")
    assert inside.reason == ("inside the deployment window (Tue-Thu 10:00-16:00 UTC), "
                             "open until Tue 2026-12-08 16:00 UTC")
    assert inside.open_until == utc(2026, 12, 8, 16)


def test_a_named_event_freezes_the_windows_it_overlaps() -> None:
    before = decide(SHOP_PRODUCTION, utc(2026, 11, 24, 11))
    during = decide(SHOP_PRODUCTION, utc(2026, 11, 26, 11))

    assert before.allowed
    assert before.open_until == utc(2026, 11, 24, 16)
    assert (during.allowed, during.blocking) == (False, "black-friday")
    assert during.reason.startswith("frozen: black-friday")
    assert during.next_open == utc(2026, 12, 1, 10)  # Tuesday after the event, when the window opens


def test_freezes_that_follow_each_other_are_named_together_until_the_last_ends() -> None:
    decision = decide(SHOP_PRODUCTION, utc(2026, 11, 28, 9))  # Saturday: weekend and black-friday

    assert decision.reason == ("frozen: black-friday until Tue 2026-12-01 00:00 UTC; "
                               "the next opens Tue 2026-12-01 10:00 UTC")
    christmas = decide(SHOP_PRODUCTION, utc(2026, 12, 22, 11))
    assert christmas.blocking == "christmas"
    assert "until Thu 2026-12-24 00:00 UTC" in christmas.reason
    assert christmas.next_open == utc(2026, 12, 24, 10)


def test_windows_keep_their_wall_clock_hours_across_the_march_change_in_berlin() -> None:
    thursday_evening = decide(BERLIN, utc(2026, 3, 26, 15, 30))  # 16:30 CET, after the window

    assert decide(BERLIN, utc(2026, 3, 26, 9)).allowed  # Thursday 10:00 CET
    assert thursday_evening.next_open == utc(2026, 3, 31, 8)  # Tuesday 10:00 CEST
    assert thursday_evening.reason.endswith("the next opens Tue 2026-03-31 10:00 CEST")
    assert not decide(BERLIN, utc(2026, 3, 31, 7, 59)).allowed


def test_a_window_that_starts_in_the_skipped_hour_opens_when_the_hour_ends() -> None:
    saturday = decide(SUNDAY_NIGHTS, utc(2026, 3, 28, 12))  # 02:00 does not exist on 29 March

    assert saturday.next_open == utc(2026, 3, 29, 1)
    assert saturday.reason.endswith("the next opens Sun 2026-03-29 03:00 CEST")
    assert decide(SUNDAY_NIGHTS, utc(2026, 3, 29, 1)).open_until == utc(2026, 3, 29, 2)  # 04:00 CEST


def test_windows_keep_their_wall_clock_hours_across_the_october_change_in_berlin() -> None:
    assert decide(BERLIN, utc(2026, 10, 22, 8)).allowed  # Thursday 10:00 CEST
    assert decide(BERLIN, utc(2026, 10, 24, 12)).next_open == utc(2026, 10, 27, 9)  # Tuesday 10:00 CET
    saturday = decide(SUNDAY_NIGHTS, utc(2026, 10, 24, 12))
    assert saturday.next_open == utc(2026, 10, 25, 0)  # 02:00 CEST, the first of the two
    night = decide(SUNDAY_NIGHTS, utc(2026, 10, 25, 0, 30))
    assert night.open_until == utc(2026, 10, 25, 3)  # 04:00 CET: three hours after it opened


def test_the_weekend_freeze_ends_at_midnight_on_the_local_clock_after_the_change() -> None:
    assert decide(BERLIN, utc(2026, 3, 29, 21, 59)).blocking == "weekend"  # Sunday 23:59 CEST
    assert decide(BERLIN, utc(2026, 3, 29, 22)).blocking == "window"  # Monday 00:00 CEST


def test_approvals_hold_a_deploy_inside_its_window() -> None:
    policy = PRODUCTION.model_copy(update={"approvals": 2})

    held = decide(policy, utc(2026, 12, 8, 11), approvals=1)
    approved = decide(policy, utc(2026, 12, 8, 11), approvals=2)

    assert (held.allowed, held.blocking, held.next_open) == (False, "approvals", utc(2026, 12, 8, 11))
    assert held.reason.startswith("needs 2 approvals, has 1; inside the deployment window")
    assert approved.allowed


def test_next_open_is_none_only_when_nothing_opens_within_366_days() -> None:
    long = WindowPolicy(windows=[WeeklyWindow(days=["mon"], start=time(10), end=time(11))],
                        freezes=Freezes(events=[EventFreeze(name="migration", start=datetime(2026, 1, 1),
                                                            end=datetime(2027, 6, 1))]))

    never = decide(long, utc(2026, 3, 1))
    late = decide(long, utc(2026, 9, 1))

    assert never.next_open is None
    assert never.reason.endswith("none opens within 366 days")
    assert late.next_open == utc(2027, 6, 7, 10)  # 279 days ahead: found beyond the first fortnight


def test_other_environments_are_unrestricted() -> None:
    policies = default_policies()

    assert decide(policies["staging"], utc(2026, 12, 12, 3)).allowed  # Saturday night
    assert policy_for(policies, "qa") == WindowPolicy()
    assert decide(policy_for(policies, "qa"), utc(2026, 12, 12, 3)).open_until is None


def test_policies_are_checked_when_loaded() -> None:
    loaded = WindowPolicy.model_validate({
        "timezone": "Europe/Berlin",
        "windows": [{"days": ["mon"], "start": 600, "end": "12:00"}],  # YAML 1.1 reads 10:00 as 600
    })

    assert loaded.windows[0].start == time(10)
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        WindowPolicy(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="ends .* before it starts"):
        EventFreeze(name="sale", start=datetime(2026, 12, 2), end=datetime(2026, 12, 1))
    with pytest.raises(ValidationError):
        WindowPolicy.model_validate({"windows": [{"days": ["someday"], "start": "10:00", "end": "11:00"}]})
    with pytest.raises(WindowError, match="no UTC offset"):
        decide(PRODUCTION, datetime(2026, 12, 8, 11))
    assert all(field.description for model in (WindowPolicy, WeeklyWindow, WeeklyFreeze, HolidayFreeze,
                                               EventFreeze, Freezes) for field in model.model_fields.values())


# --- properties ------------------------------------------------------------------------------

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu")
minutes_of_day = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
days = st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True)
dates = st.dates(date(2026, 1, 1), date(2027, 12, 31))


@st.composite
def policies(draw: st.DrawFn) -> WindowPolicy:
    window = st.builds(WeeklyWindow, days=days, start=minutes_of_day, end=minutes_of_day)
    weekly = st.builds(WeeklyFreeze, name=st.just("weekly"), start_day=st.sampled_from(WEEKDAYS),
                       start=minutes_of_day, end_day=st.sampled_from(WEEKDAYS), end=minutes_of_day)
    holiday = st.builds(HolidayFreeze, name=st.just("holiday"), dates=st.lists(dates, min_size=1, max_size=3))
    windows = draw(st.lists(window, max_size=2))
    events = []
    if draw(st.booleans()):
        start = draw(st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31)))
        length = timedelta(minutes=draw(st.integers(1, 60 * 24 * 90)))
        events.append(EventFreeze(name="event", start=start, end=start + length))
    return WindowPolicy(timezone=draw(st.sampled_from(ZONES)), windows=windows,
                        freezes=Freezes(weekly=draw(st.lists(weekly, max_size=1)),
                                        holidays=draw(st.lists(holiday, max_size=1)), events=events))


instants = st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31)).map(
    lambda moment: moment.replace(second=0, microsecond=0, tzinfo=UTC))


@settings(max_examples=300, deadline=None)
@given(policies(), instants, st.lists(st.floats(0, 1), min_size=20, max_size=20))
def test_next_open_is_open_and_nothing_before_it_is(policy: WindowPolicy, at: datetime,
                                                     fractions: list[float]) -> None:
    decision = decide(policy, at)
    end = decision.next_open or at + timedelta(days=366)
    span = int((end - at).total_seconds() // 60)

    assert decision.allowed == (decision.next_open == at)
    if decision.next_open is not None:
        assert decide(policy, decision.next_open).allowed
    samples = {1, span - 1} | {round(f * span) for f in fractions}
    for minute in sorted(m for m in samples if 0 < m < span):
        assert not decide(policy, at + timedelta(minutes=minute)).allowed, at + timedelta(minutes=minute)
    if decision.allowed and decision.open_until is not None:
        assert decide(policy, decision.open_until - timedelta(minutes=1)).allowed
        assert not decide(policy, decision.open_until).allowed
