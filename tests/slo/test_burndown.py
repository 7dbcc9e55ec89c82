"""The burn-down and the SLI per day, from hour counts: a calendar month's budget as it went,
a rolling window's budget as each point's window had it, time slices, and days in a zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsplane.slo.budget import Counts
from opsplane.slo.burndown import burn_down, days
from opsplane.slo.models import Slo

EVENTS = {"events": {"bad": 'http_requests_total{status=~"5.."}', "total": "http_requests_total"}}


def slo(**fields: Any) -> Slo:
    return Slo.model_validate({"service": "gateway", "objective": "99%", "sli": EVENTS, **fields})


def hour(at: datetime) -> int:
    return int(at.timestamp()) // 3600


def test_a_calendar_month_goes_down_from_full_as_bad_hours_come_and_ends_on_the_period() -> None:
    month = slo(calendar={"unit": "month"})
    start, now = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 11, tzinfo=UTC)
    hours = {}
    for h in range(10 * 24):
        at = start + timedelta(hours=h)
        hours[hour(at)] = Counts(1000.0 - (10.0 if at.day > 5 else 0.0), 1000.0)
    down = burn_down(month, hours, now)
    assert down.start == start.timestamp() and down.end == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    at = dict(zip(down.times, down.remaining, strict=True))
    assert at[start.timestamp()] is None  # nothing counted yet: nothing to judge
    assert at[datetime(2026, 12, 6, tzinfo=UTC).timestamp()] == pytest.approx(1.0)
    halfway = datetime(2026, 12, 8, 12, tzinfo=UTC).timestamp()
    assert at[halfway] == pytest.approx(1 - 1 / 3)  # 2.5 days bad of 7.5
    assert down.last == pytest.approx(0.5) and at[now.timestamp()] == pytest.approx(0.5)
    # the ideal line: full at the start, 0 at the month's end, 10/31 of the way at now
    ideal = dict(zip(down.times, down.ideal, strict=True))
    assert ideal[start.timestamp()] == 1.0 and ideal[down.end] == 0.0
    assert ideal[now.timestamp()] == pytest.approx(1 - 10 / 31)
    assert down.times[-1] == down.end and down.remaining[-1] is None  # the rest of the month is ahead
    assert len(down.times) == 10 * 24 + 2  # every hour up to now, and the month's end


def test_a_rolling_window_shows_each_points_own_window_so_old_failures_leave_it() -> None:
    day = slo(window="1d")
    now = datetime(2026, 12, 10, 12, tzinfo=UTC)
    hours = {}
    for h in range(48):
        at = now - timedelta(hours=48 - h)
        bad = 50.0 if now - timedelta(hours=36) <= at < now - timedelta(hours=30) else 0.0
        hours[hour(at)] = Counts(1000.0 - bad, 1000.0)
    down = burn_down(day, hours, now)
    assert down.start == (now - timedelta(days=1)).timestamp() and down.end == now.timestamp()
    at = dict(zip(down.times, down.remaining, strict=True))
    # 24 h ago the window held the 6 bad hours: 300 bad of 24,000 is 1.25 % for a 1 % budget
    assert at[down.start] == pytest.approx(1 - 1.25)
    assert at[(now - timedelta(hours=9)).timestamp()] == pytest.approx(1 - 3 * 50 / 24000 / 0.01)
    assert at[(now - timedelta(hours=6)).timestamp()] == pytest.approx(1.0)  # they left it
    assert down.last == pytest.approx(1.0)
    assert down.ideal[0] == 1.0 and down.ideal[-1] == 0.0


def test_the_last_point_is_the_status_figure_when_given() -> None:
    day = slo(window="1d")
    now = datetime(2026, 12, 10, 12, 30, tzinfo=UTC)
    hours = {hour(now - timedelta(hours=h)): Counts(990.0, 1000.0) for h in range(1, 30)}
    down = burn_down(day, hours, now, last=0.25)
    assert down.times[-1] == now.timestamp() and down.remaining[-1] == 0.25
    assert down.remaining[-2] == pytest.approx(0.0)  # a 1 % bad share spends a 1 % budget


def test_time_slices_spend_the_budget_by_bad_slices_of_the_whole_period() -> None:
    sliced = slo(calendar={"unit": "month"}, budgeting="timeslices", timeslice="1h", objective="99%")
    start, now = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC)
    hours = {hour(start + timedelta(hours=h)): Counts(1000.0, 1000.0, 1, 1 if h < 3 else 0)
             for h in range(48)}
    down = burn_down(sliced, hours, now)
    # 720 slices in November, 1 % of them is 7.2 bad slices of budget; 3 were bad
    assert down.last == pytest.approx(1 - 3 / 7.2)
    assert down.remaining[0] == pytest.approx(1.0)  # no slice bad yet: the budget is whole


def test_a_quarter_is_drawn_every_few_hours() -> None:
    quarter = slo(calendar={"unit": "quarter"})
    now = datetime(2026, 12, 20, tzinfo=UTC)
    down = burn_down(quarter, {}, now, most=750)
    assert len(down.times) <= 752 and down.times[1] - down.times[0] == 3 * 3600
    assert all(v is None for v in down.remaining)


def test_days_are_taken_in_the_calendars_zone_and_cut_at_now() -> None:
    paris = slo(calendar={"unit": "month", "timezone": "Europe/Paris"})
    start = datetime(2026, 11, 30, 23, tzinfo=UTC)  # midnight, 1 December, in Paris
    now = datetime(2026, 12, 3, 5, tzinfo=UTC)
    hours = {hour(start + timedelta(hours=h)): Counts(900.0 if h == 30 else 1000.0, 1000.0)
             for h in range(54)}
    found = days(paris, hours, start, now)
    assert [datetime.fromtimestamp(d.start, UTC).isoformat() for d in found] == [
        "2026-11-30T23:00:00+00:00", "2026-12-01T23:00:00+00:00", "2026-12-02T23:00:00+00:00"]
    assert found[0].sli == 1.0 and found[1].sli == pytest.approx(1 - 100 / 24000)
    assert found[2].end == now.timestamp() and found[2].counts.total == 6 * 1000.0
