"""Error-budget arithmetic: windows (rolling, calendar month and quarter across DST), the SLI,
budget spent and left, burn rates and time slices, on given counts and an injected `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsplane.slo.budget import (
    Counts,
    budget_consumed,
    budget_remaining,
    budget_window,
    burn_rate,
    counts_of,
    events,
    next_period,
    period_start,
    sli,
)
from opsplane.slo.models import Slo

DAY = 86400.0
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def slo(**fields: Any) -> Slo:
    given: dict[str, Any] = {"service": "gateway", "objective": "99.9%",
                             "sli": {"events": {"bad": 'http_requests_total{status=~"5.."}',
                                                "total": "http_requests_total"}}}
    return Slo.model_validate({**given, **fields})


def month_of_minutes(per_minute: float, bad_minutes: dict[int, float], *, end: float, days: int = 30
                     ) -> list[tuple[float, float, float]]:
    """`days` of minutes ending at `end`, `per_minute` events each, the given bad counts."""
    first = end - days * DAY
    return [(first + 60 * m, per_minute - bad_minutes.get(m, 0.0), per_minute) for m in range(days * 1440)]


def test_a_30_day_window_that_fails_exactly_its_budget_has_spent_it_all() -> None:
    objective = slo()
    now = NOW.timestamp()
    # 1000 requests a minute for 30 days: 43.2 million; 0.1 % of them is 43,200 failures
    minutes = month_of_minutes(1000.0, {m: 100.0 for m in range(0, 43200, 100)}, end=now)
    window = budget_window(objective, NOW)
    counts = counts_of(objective, minutes, window.start.timestamp(), now)
    assert counts.total == 43_200_000 and counts.bad == 43_200
    assert budget_consumed(objective, counts, window) == pytest.approx(1.0)
    assert budget_remaining(objective, counts, window) == pytest.approx(0.0)
    assert sli(objective, counts, window) == pytest.approx(0.999)
    assert burn_rate(objective, counts, 30 * DAY) == pytest.approx(1.0)


def test_an_overspent_budget_goes_below_zero() -> None:
    objective = slo()
    window = budget_window(objective, NOW)
    counts = Counts(good=997.0, total=1000.0)
    assert budget_remaining(objective, counts, window) == pytest.approx(-2.0)


def test_a_minute_of_errors_at_14_4_times_the_budget_is_a_burn_of_14_4() -> None:
    objective = slo()
    assert burn_rate(objective, Counts(good=10_000 - 144, total=10_000), 3600) == pytest.approx(14.4)
    assert burn_rate(objective, Counts(), 3600) == 0.0  # no events: nothing burns


def test_no_events_is_no_judgement_with_occurrences() -> None:
    objective = slo()
    window = budget_window(objective, NOW)
    assert sli(objective, Counts(), window) is None
    assert budget_remaining(objective, Counts(), window) is None


def test_the_rolling_window_ends_now_and_is_as_long_as_configured() -> None:
    window = budget_window(slo(window="28d"), NOW)
    assert window.start == NOW - timedelta(days=28)
    assert window.length == 28 * DAY


def test_a_calendar_month_across_the_spring_change_is_an_hour_short() -> None:
    berlin = slo(calendar={"unit": "month", "timezone": "Europe/Berlin"})
    window = budget_window(berlin, NOW)
    assert window.start == datetime(2026, 2, 28, 23, 0, tzinfo=UTC)  # 1 March, 00:00 CET
    assert window.length == 31 * DAY - 3600  # 1 April, 00:00 CEST, is 22:00 UTC
    autumn = budget_window(berlin, datetime(2026, 10, 15, tzinfo=UTC))
    assert autumn.length == 31 * DAY + 3600


def test_a_calendar_quarter_starts_at_local_midnight_on_its_first_day() -> None:
    quarter = slo(calendar={"unit": "quarter", "timezone": "Europe/Berlin"})
    # 00:30 on 1 April in Berlin is still 31 March in UTC: already the second quarter
    window = budget_window(quarter, datetime(2026, 3, 31, 22, 30, tzinfo=UTC))
    assert window.start == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
    assert window.elapsed == 1800
    before = budget_window(quarter, datetime(2026, 3, 31, 21, 59, tzinfo=UTC))
    assert before.start == datetime(2025, 12, 31, 23, 0, tzinfo=UTC)
    new_year = datetime(2027, 1, 1, tzinfo=UTC)
    assert next_period("quarter", "UTC", datetime(2026, 10, 1, tzinfo=UTC)) == new_year


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
       st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]),
       st.sampled_from(["month", "quarter"]))
def test_every_instant_lies_in_exactly_one_period(now: datetime, zone: str, unit: str) -> None:
    start = period_start(unit, zone, now)
    end = next_period(unit, zone, start)
    assert start <= now < end
    assert period_start(unit, zone, end) == end  # the next period starts where this one ends
    days = (end - start).total_seconds() / DAY
    assert (28 - 0.1 <= days <= 31 + 0.1) if unit == "month" else (89 - 0.1 <= days <= 92 + 0.1)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1439), st.integers(0, 50), st.integers(0, 50)), max_size=80),
       st.sampled_from(["99%", "99.9%", "95%"]))
def test_spent_and_left_add_up_and_the_sli_matches_the_counts(rows: list[tuple[int, int, int]],
                                                              objective: str) -> None:
    spec = slo(objective=objective, window="1d")
    window = budget_window(spec, NOW)
    start = window.start.timestamp()
    minutes = [(start + 60 * m, float(min(g, t)), float(t)) for m, g, t in rows]
    counts = counts_of(spec, minutes, start, NOW.timestamp())
    consumed = budget_consumed(spec, counts, window)
    if counts.total == 0:
        assert consumed is None
        return
    assert consumed is not None and consumed >= 0
    assert budget_remaining(spec, counts, window) == pytest.approx(1 - consumed)
    assert sli(spec, counts, window) == pytest.approx(1 - consumed * (1 - spec.objective))


def test_time_slices_count_bad_minutes_against_the_whole_windows_slices() -> None:
    sliced = slo(budgeting="timeslices", timeslice="1m", timeslice_target="99%")
    now = NOW.timestamp()
    bad = {m: 5.0 for m in range(0, 43200, 1000)}  # 44 minutes at 95 %: below the 99 % target
    bad[7] = 1.0  # exactly 99 %: a good slice
    minutes = month_of_minutes(100.0, bad, end=now)
    window = budget_window(sliced, NOW)
    counts = counts_of(sliced, minutes, window.start.timestamp(), now)
    assert counts.bad_slices == 44 and counts.slices == 43200
    assert budget_consumed(sliced, counts, window) == pytest.approx(44 / 43.2)
    assert sli(sliced, counts, window) == pytest.approx(1 - 44 / 43200)
    assert events(sliced, counts) == 43200


def test_a_slice_without_events_is_good_and_missing_minutes_are_not_bad() -> None:
    sliced = slo(budgeting="timeslices", timeslice="5m")
    start = 1_800_000_000.0 - (1_800_000_000.0 % 300)
    # one failing minute in the first five-minute slice, nothing at all in the second
    minutes = [(start, 0.0, 10.0), (start + 60, 100.0, 100.0)]
    counts = counts_of(sliced, minutes, start, start + 600)
    assert (counts.slices, counts.bad_slices) == (1, 1)
    assert burn_rate(sliced, counts, 600) == pytest.approx(0.5 / 0.001)


def test_a_slice_cut_by_the_window_edge_is_left_out() -> None:
    sliced = slo(budgeting="timeslices", timeslice="5m")
    start = 1_800_000_000.0 - (1_800_000_000.0 % 300)
    minutes = [(start + 60 * m, 0.0, 10.0) for m in range(10)]
    assert counts_of(sliced, minutes, start + 60, start + 600).bad_slices == 1  # the second only
