"""Who is on call: weekly rotation at a local handoff time across daylight-saving changes,
overrides from the inventory and from the event log, and swaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from opsplane.clock import ManualClock
from opsplane.oncall.rotation import Override, Roster, Swap, shift_bounds
from tests.oncall.factories import T0, oncall_data, oncall_settings


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _primary(roster: Roster, at: datetime) -> str:
    return roster.on_call("platform", "primary", at).person


def test_the_rotation_hands_off_weekly_at_the_local_handoff_time() -> None:
    roster = Roster(oncall_settings())
    clock = ManualClock(_utc(2026, 3, 2, 7, 59))  # 08:59 in Berlin (CET), Monday of week one
    assert _primary(roster, clock.now()) == "cleo"  # the week before the start runs on backwards
    clock.advance(60)
    assert _primary(roster, clock.now()) == "ana"
    people = []
    for _ in range(4):
        clock.advance(7 * 86400)
        people.append(_primary(roster, clock.now()))
    assert people == ["ben", "cleo", "ana", "ben"]
    assert roster.on_call("platform", "secondary", T0).person == "ben"


def test_the_handoff_stays_at_nine_on_the_wall_clock_when_summer_time_starts() -> None:
    roster = Roster(oncall_settings())
    # Berlin moves to CEST on Sunday 2026-03-29: Monday's 09:00 handoff is 07:00 UTC, not 08:00
    assert _primary(roster, _utc(2026, 3, 30, 6, 59)) == "ana"
    assert _primary(roster, _utc(2026, 3, 30, 7, 0)) == "ben"
    shift = roster.on_call("platform", "primary", _utc(2026, 3, 25, 12, 0))
    assert (shift.start, shift.end) == (_utc(2026, 3, 23, 8, 0), _utc(2026, 3, 30, 7, 0))
    assert shift.end - shift.start == timedelta(hours=167)


def test_the_shift_over_the_autumn_change_is_an_hour_longer() -> None:
    roster = Roster(oncall_settings())
    shift = roster.on_call("platform", "primary", _utc(2026, 10, 22, 12, 0))
    assert (shift.start, shift.end) == (_utc(2026, 10, 19, 7, 0), _utc(2026, 10, 26, 8, 0))
    assert shift.end - shift.start == timedelta(hours=169)
    assert _primary(roster, _utc(2026, 10, 26, 7, 30)) == shift.person  # 08:30 CET: still on


def test_a_handoff_time_the_clock_skips_happens_just_after_the_gap() -> None:
    data = oncall_data()
    data["schedules"]["platform"]["handoff"] = {"day": "sun", "time": "02:30"}
    settings = oncall_settings(schedules=data["schedules"])
    start, _ = shift_bounds(settings.schedules["platform"], _utc(2026, 3, 29, 12, 0))
    assert start == _utc(2026, 3, 29, 1, 30)  # 03:30 CEST, the first minute after 02:30 CET


def test_an_unquoted_handoff_time_that_yaml_reads_as_minutes_is_taken_back() -> None:
    data = oncall_data()
    data["schedules"]["platform"]["handoff"] = {"day": "mon", "time": 9 * 60}  # YAML 1.1: 9:00
    settings = oncall_settings(schedules=data["schedules"])
    assert str(settings.schedules["platform"].handoff.time) == "09:00:00"


def test_overrides_win_over_the_rotation_and_later_ones_over_earlier_ones() -> None:
    data = oncall_data()
    data["schedules"]["platform"]["overrides"] = [
        {"layer": "primary", "person": "dan", "start": "2026-03-10T12:00:00", "end": "2026-03-11T12:00:00"},
    ]
    settings = oncall_settings(schedules=data["schedules"])
    inside = _utc(2026, 3, 10, 12, 0)  # 13:00 in Berlin
    assert _primary(Roster(settings), inside) == "dan"
    assert _primary(Roster(settings), _utc(2026, 3, 10, 10, 59)) == "ben"  # 11:59 local: not yet
    recorded = Override("platform", "primary", "cleo", _utc(2026, 3, 10, 0, 0), _utc(2026, 3, 10, 18, 0))
    later = Override("platform", "primary", "ana", _utc(2026, 3, 10, 17, 0), _utc(2026, 3, 10, 19, 0))
    roster = Roster(settings, [recorded, later])
    assert roster.on_call("platform", "primary", inside).source == "override"
    assert _primary(roster, inside) == "cleo"
    assert _primary(roster, _utc(2026, 3, 10, 17, 30)) == "ana"
    assert _primary(roster, _utc(2026, 3, 10, 18, 30)) == "ana"
    assert _primary(roster, _utc(2026, 3, 10, 19, 0)) == "dan"  # the inventory's own, under them
    assert roster.on_call("platform", "secondary", inside).person == "cleo"  # other layer untouched


def test_shifts_are_split_where_an_override_begins_and_ends() -> None:
    override = Override("platform", "primary", "dan", _utc(2026, 3, 11, 11, 0), _utc(2026, 3, 12, 11, 0))
    shifts = Roster(oncall_settings(), [override]).shifts(
        "platform", "primary", _utc(2026, 3, 9, 8, 0), _utc(2026, 3, 23, 8, 0))
    assert [(s.person, s.start, s.end, s.source) for s in shifts] == [
        ("ben", _utc(2026, 3, 9, 8, 0), _utc(2026, 3, 11, 11, 0), "rotation"),
        ("dan", _utc(2026, 3, 11, 11, 0), _utc(2026, 3, 12, 11, 0), "override"),
        ("ben", _utc(2026, 3, 12, 11, 0), _utc(2026, 3, 16, 8, 0), "rotation"),
        ("cleo", _utc(2026, 3, 16, 8, 0), _utc(2026, 3, 23, 8, 0), "rotation"),
    ]


def test_shifts_over_four_weeks_start_with_the_current_one_whole() -> None:
    shifts = Roster(oncall_settings()).shifts("platform", "primary", T0, T0 + timedelta(weeks=4))
    assert [s.person for s in shifts] == ["ana", "ben", "cleo", "ana", "ben"]
    assert shifts[0].start == _utc(2026, 3, 2, 8, 0)
    assert all(a.end == b.start for a, b in zip(shifts, shifts[1:], strict=False))


def test_a_swap_trades_two_whole_shifts() -> None:
    swap = Swap("platform", "primary", first=T0, second=T0 + timedelta(weeks=1))
    roster = Roster(oncall_settings(), [swap])
    assert _primary(roster, T0) == "ben"
    assert _primary(roster, T0 + timedelta(weeks=1)) == "ana"
    assert _primary(roster, T0 + timedelta(weeks=2)) == "cleo"
    assert roster.on_call("platform", "primary", T0).source == "swap"
    week = roster.on_call("platform", "primary", T0 + timedelta(weeks=1))
    assert (week.start, week.end) == (_utc(2026, 3, 9, 8, 0), _utc(2026, 3, 16, 8, 0))


def test_a_swap_for_a_layer_that_left_the_inventory_is_ignored() -> None:
    roster = Roster(oncall_settings(), [Swap("platform", "tertiary", T0, T0 + timedelta(weeks=1))])
    assert _primary(roster, T0) == "ana"


def test_asking_for_an_unknown_layer_or_a_naive_time_fails_plainly() -> None:
    roster = Roster(oncall_settings())
    with pytest.raises(KeyError):
        roster.on_call("platform", "tertiary", T0)
    with pytest.raises(ValueError, match="time zone"):
        roster.on_call("platform", "primary", T0.replace(tzinfo=None))


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"])
@pytest.mark.parametrize("handoff", [("mon", "09:00"), ("sun", "02:30"), ("fri", "23:45")])
def test_a_year_of_shifts_covers_every_instant_once_with_handoffs_at_the_local_time(
    zone: str, handoff: tuple[str, str]
) -> None:
    data = oncall_data()
    data["schedules"]["platform"].update(timezone=zone, handoff={"day": handoff[0], "time": handoff[1]})
    roster = Roster(oncall_settings(schedules=data["schedules"]))
    start = _utc(2026, 1, 1, 0, 0)
    shifts = roster.shifts("platform", "primary", start, start + timedelta(days=366))
    assert len(shifts) in (53, 54)
    assert all(a.end == b.start for a, b in zip(shifts, shifts[1:], strict=False))
    for shift in shifts:
        local = shift.start.astimezone(ZoneInfo(zone))
        # a handoff the clock skips happens just after the gap; all others at the wall time
        assert local.strftime("%a").lower() == handoff[0]
        assert local.strftime("%H:%M") == handoff[1] or (handoff[1] == "02:30" and local.hour == 3)
        assert abs((shift.end - shift.start) - timedelta(weeks=1)) <= timedelta(hours=1)
        probe = shift.start + (shift.end - shift.start) / 2
        assert roster.on_call("platform", "primary", probe) == shift
    rotation = ["ana", "ben", "cleo"]
    people = [s.person for s in shifts]
    offset = rotation.index(people[0])
    assert people == [rotation[(offset + i) % 3] for i in range(len(people))]
