"""Daily uptime bars from check state changes, over an injected `now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from opsplane.web.uptime import (
    CurrentState,
    StateChange,
    Watch,
    day_range,
    overall,
    uptime_by_component,
    watch_spans,
    window_start,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # noon: today is half over


def at(day: int, hour: float = 0.0) -> datetime:
    """March `day`, `hour` o'clock UTC."""
    return datetime(2026, 3, day, tzinfo=UTC) + timedelta(hours=hour)


def change(check: str, when: datetime, before: str | None, after: str,
           component: str = "backend") -> StateChange:
    return StateChange(check_id=check, component=component, at=when, before=before, after=after)


def fractions(days) -> dict[date, float | None]:
    return {d.day: d.fraction for d in days}


def test_the_range_is_the_last_days_ending_today_and_starts_at_midnight() -> None:
    days = day_range(NOW, 90)
    assert len(days) == 90 and days[-1] == date(2026, 3, 10) and days[0] == date(2025, 12, 11)
    assert window_start(NOW, 90) == datetime(2025, 12, 11, tzinfo=UTC)


def test_days_before_the_first_result_have_no_data_and_the_first_day_counts_from_it() -> None:
    changes = [change("backend/http", at(8, 6), None, "OK")]
    result = fractions(uptime_by_component(["backend"], changes, [], now=NOW, days=5)["backend"].days)
    assert result == {date(2026, 3, 6): None, date(2026, 3, 7): None, date(2026, 3, 8): 1.0,
                      date(2026, 3, 9): 1.0, date(2026, 3, 10): 1.0}


def test_a_critical_hour_costs_its_day_one_twenty_fourth() -> None:
    changes = [change("backend/http", at(1), None, "OK"),
               change("backend/http", at(9, 3), "OK", "CRITICAL"),
               change("backend/http", at(9, 4), "CRITICAL", "OK")]
    days = uptime_by_component(["backend"], changes, [], now=NOW, days=3)["backend"].days
    assert days[1].day == date(2026, 3, 9)
    assert days[1].fraction == pytest.approx(23 / 24)
    assert days[1].down == 3600 and days[1].observed == 86400
    assert days[2].fraction == 1.0 and days[2].observed == 12 * 3600  # today: up to now


def test_an_outage_over_midnight_is_split_between_the_two_days() -> None:
    changes = [change("backend/http", at(8, 22), "OK", "CRITICAL"),
               change("backend/http", at(9, 2), "CRITICAL", "OK")]
    days = fractions(uptime_by_component(["backend"], changes, [], now=NOW, days=3)["backend"].days)
    assert days[date(2026, 3, 8)] == pytest.approx(22 / 24)
    assert days[date(2026, 3, 9)] == pytest.approx(22 / 24)


def test_the_state_before_the_window_comes_from_the_first_change_in_it() -> None:
    # CRITICAL since before the window, recovered on the 9th at 06:00.
    changes = [change("backend/http", at(9, 6), "CRITICAL", "OK")]
    days = fractions(uptime_by_component(["backend"], changes, [], now=NOW, days=3)["backend"].days)
    assert days == {date(2026, 3, 8): 0.0, date(2026, 3, 9): pytest.approx(18 / 24),
                    date(2026, 3, 10): 1.0}


def test_a_check_without_changes_in_the_window_keeps_its_current_state() -> None:
    rows = [CurrentState("backend/http", "backend", "OK", since=at(1)),
            CurrentState("cache/redis", "cache", "CRITICAL", since=at(9, 12))]
    result = uptime_by_component(["backend", "cache"], [], rows, now=NOW, days=3)
    assert [d.fraction for d in result["backend"].days] == [1.0, 1.0, 1.0]
    # cache: first seen at noon on the 9th, CRITICAL ever since
    assert [d.fraction for d in result["cache"].days] == [None, 0.0, 0.0]


def test_one_critical_check_of_two_makes_the_component_down() -> None:
    changes = [change("backend/http", at(1), None, "OK"), change("backend/tcp", at(1), None, "OK"),
               change("backend/tcp", at(10, 6), "OK", "CRITICAL")]
    days = uptime_by_component(["backend"], changes, [], now=NOW, days=1)["backend"].days
    assert days[0].fraction == pytest.approx(0.5)


def test_warning_and_unknown_are_not_down() -> None:
    changes = [change("backend/http", at(9), None, "WARNING"),
               change("backend/http", at(9, 12), "WARNING", "UNKNOWN")]
    days = uptime_by_component(["backend"], changes, [], now=NOW, days=2)["backend"].days
    assert [d.fraction for d in days] == [1.0, 1.0]


def test_other_components_and_changes_outside_the_window_are_ignored() -> None:
    changes = [change("db/pg", at(9), None, "CRITICAL", component="db"),
               change("backend/http", at(11), "OK", "CRITICAL")]  # after now: not yet
    result = uptime_by_component(["backend"], changes, [], now=NOW, days=2)
    assert list(result) == ["backend"]
    assert [d.fraction for d in result["backend"].days] == [None, None]


def test_overall_weighs_days_by_their_observed_time() -> None:
    changes = [change("backend/http", at(9), None, "CRITICAL"),
               change("backend/http", at(9, 6), "CRITICAL", "OK")]
    days = uptime_by_component(["backend"], changes, [], now=NOW, days=2)["backend"].days
    assert overall(days) == pytest.approx(1 - 6 / 36)
    assert overall(days[:0]) is None


# --- only watched time counts ---------------------------------------------------------------


def test_a_few_minutes_of_data_give_an_uptime_over_those_minutes_and_nothing_more() -> None:
    # serve started at 11:56; payments failed from 11:57 to 11:58; now is noon
    started = [Watch(at(10, 11 + 56 / 60), None)]
    changes = [change("backend/http", at(10, 11 + 56 / 60), None, "OK"),
               change("backend/http", at(10, 11 + 57 / 60), "OK", "CRITICAL"),
               change("backend/http", at(10, 11 + 58 / 60), "CRITICAL", "OK")]
    measured = uptime_by_component(["backend"], changes, [], now=NOW, days=2, watched=started)["backend"]
    today = measured.days[-1]
    assert today.observed == pytest.approx(240) and today.down == pytest.approx(60)
    assert measured.fraction == pytest.approx(0.75)
    assert today.coverage(NOW) == pytest.approx(240 / (12 * 3600))  # a few minutes of a half day
    assert measured.days[0].fraction is None and measured.since == at(10, 11 + 56 / 60)


def test_the_time_while_no_control_plane_ran_is_not_observed() -> None:
    # CRITICAL when serve stopped at 02:00 on the 9th; started again at 06:00 on the 10th, OK
    watched = [Watch(at(9), at(9, 2)), Watch(at(10, 6), None)]
    changes = [change("backend/http", at(9), None, "OK"),
               change("backend/http", at(9, 1), "OK", "CRITICAL"),
               change("backend/http", at(10, 6), "CRITICAL", "OK")]
    days = uptime_by_component(["backend"], changes, [], now=NOW, days=2, watched=watched)["backend"].days
    assert (days[0].observed, days[0].down) == (7200, 3600)  # not the 22 hours it was not watched
    assert (days[1].observed, days[1].down) == (6 * 3600, 0)
    assert days[0].coverage(NOW) == pytest.approx(2 / 24) and days[1].coverage(NOW) == 0.5


def test_a_check_known_before_the_first_start_counts_from_that_start() -> None:
    rows = [CurrentState("backend/http", "backend", "OK", since=at(1))]
    measured = uptime_by_component(["backend"], [], rows, now=NOW, days=3,
                                   watched=[Watch(at(9, 18), None)])["backend"]
    assert [d.observed for d in measured.days] == [0, 6 * 3600, 12 * 3600]
    assert measured.since == at(9, 18) and measured.observed == 18 * 3600


def test_watch_spans_follow_starts_and_stops_and_end_a_killed_run_at_its_last_change() -> None:
    window = at(8)
    lifecycle = [(at(8, 1), "started"), (at(8, 2), "stopped"),
                 (at(9), "started"),  # killed: no "stopped"; its last change was at 03:00
                 (at(9, 12), "started")]
    spans = watch_spans(lifecycle, running_before=None, start=window,
                        evidence=[at(8, 1), at(9, 3), at(9, 13)])
    assert spans == [Watch(at(8, 1), at(8, 2)), Watch(at(9), at(9, 3)), Watch(at(9, 12), None)]
    # a killed run that recorded nothing watched nothing anyone can vouch for
    assert watch_spans([(at(9), "started"), (at(9, 12), "started")], running_before=None,
                       start=window) == [Watch(at(9, 12), None)]


def test_watch_spans_know_a_run_that_began_before_the_window() -> None:
    window = at(8)
    assert watch_spans([(at(9), "stopped")], running_before=None, start=window) == [Watch(window, at(9))]
    assert watch_spans([], running_before=True, start=window) == [Watch(window, None)]
    assert watch_spans([], running_before=False, start=window) == []
    assert watch_spans([], running_before=None, start=window) is None  # no record: all known time counts
