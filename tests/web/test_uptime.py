"""Daily uptime bars from check state changes, over an injected `now`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from opsplane.web.uptime import (
    CurrentState,
    StateChange,
    day_range,
    overall,
    uptime_by_component,
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
    result = fractions(uptime_by_component(["backend"], changes, [], now=NOW, days=5)["backend"])
    assert result == {date(2026, 3, 6): None, date(2026, 3, 7): None, date(2026, 3, 8): 1.0,
                      date(2026, 3, 9): 1.0, date(2026, 3, 10): 1.0}


def test_a_critical_hour_costs_its_day_one_twenty_fourth() -> None:
    changes = [change("backend/http", at(1), None, "OK"),
               change("backend/http", at(9, 3), "OK", "CRITICAL"),
               change("backend/http", at(9, 4), "CRITICAL", "OK")]
    days = uptime_by_component(["backend"], changes, [], now=NOW, days=3)["backend"]
    assert days[1].day == date(2026, 3, 9)
    assert days[1].fraction == pytest.approx(23 / 24)
    assert days[1].down == 3600 and days[1].observed == 86400
    assert days[2].fraction == 1.0 and days[2].observed == 12 * 3600  # today: up to now


def test_an_outage_over_midnight_is_split_between_the_two_days() -> None:
    changes = [change("backend/http", at(8, 22), "OK", "CRITICAL"),
               change("backend/http", at(9, 2), "CRITICAL", "OK")]
    days = fractions(uptime_by_component(["backend"], changes, [], now=NOW, days=3)["backend"])
    assert days[date(2026, 3, 8)] == pytest.approx(22 / 24)
    assert days[date(2026, 3, 9)] == pytest.approx(22 / 24)


def test_the_state_before_the_window_comes_from_the_first_change_in_it() -> None:
    # CRITICAL since before the window, recovered on the 9th at 06:00.
    changes = [change("backend/http", at(9, 6), "CRITICAL", "OK")]
    days = fractions(uptime_by_component(["backend"], changes, [], now=NOW, days=3)["backend"])
    assert days == {date(2026, 3, 8): 0.0, date(2026, 3, 9): pytest.approx(18 / 24),
                    date(2026, 3, 10): 1.0}


def test_a_check_without_changes_in_the_window_keeps_its_current_state() -> None:
    rows = [CurrentState("backend/http", "backend", "OK", since=at(1)),
            CurrentState("cache/redis", "cache", "CRITICAL", since=at(9, 12))]
    result = uptime_by_component(["backend", "cache"], [], rows, now=NOW, days=3)
    assert [d.fraction for d in result["backend"]] == [1.0, 1.0, 1.0]
    # cache: first seen at noon on the 9th, CRITICAL ever since
    assert [d.fraction for d in result["cache"]] == [None, 0.0, 0.0]


def test_one_critical_check_of_two_makes_the_component_down() -> None:
    changes = [change("backend/http", at(1), None, "OK"), change("backend/tcp", at(1), None, "OK"),
               change("backend/tcp", at(10, 6), "OK", "CRITICAL")]
    days = uptime_by_component(["backend"], changes, [], now=NOW, days=1)["backend"]
    assert days[0].fraction == pytest.approx(0.5)


def test_warning_and_unknown_are_not_down() -> None:
    changes = [change("backend/http", at(9), None, "WARNING"),
               change("backend/http", at(9, 12), "WARNING", "UNKNOWN")]
    days = uptime_by_component(["backend"], changes, [], now=NOW, days=2)["backend"]
    assert [d.fraction for d in days] == [1.0, 1.0]


def test_other_components_and_changes_outside_the_window_are_ignored() -> None:
    changes = [change("db/pg", at(9), None, "CRITICAL", component="db"),
               change("backend/http", at(11), "OK", "CRITICAL")]  # after now: not yet
    result = uptime_by_component(["backend"], changes, [], now=NOW, days=2)
    assert list(result) == ["backend"]
    assert [d.fraction for d in result["backend"]] == [None, None]


def test_overall_weighs_days_by_their_observed_time() -> None:
    changes = [change("backend/http", at(9), None, "CRITICAL"),
               change("backend/http", at(9, 6), "CRITICAL", "OK")]
    days = uptime_by_component(["backend"], changes, [], now=NOW, days=2)["backend"]
    assert overall(days) == pytest.approx(1 - 6 / 36)
    assert overall(days[:0]) is None
