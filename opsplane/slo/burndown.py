"""An SLO's error budget over time, for the dashboard: pure functions of the SLO, its hour
counts (`SloHourRow`s as `Counts` by hour number, Unix seconds // 3600) and `now`.

The burn-down runs over one window. For a calendar window it spans the whole month or quarter:
at each hour, the budget left of the counts from the period's start to then, judged as
`budget.budget_remaining` judges the window so far, the line stopping at now. For a rolling
window it spans the last window: at each hour t, the budget left of the window that ended at
t, [t - window, t), which is what the SLO's status said then; so it reads the hours of two
windows. Its last point, at now, is the status's own figure when one is given, so the chart
ends on the number the page shows (the status sums the minutes at the window's edges too).
The ideal line spends the budget evenly, from 100 % at the chart's start to 0 at its end.

The SLI per day is each day's good share (for time slices, the day's good slices over the
slices a day holds), days taken in the calendar's zone, else in UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from opsplane.slo import budget
from opsplane.slo.budget import BudgetWindow, Counts
from opsplane.slo.models import Slo

HOUR = 3600
MAX_POINTS = 750  # a quarter's hours are drawn every third hour


@dataclass(frozen=True)
class BurnDown:
    """The budget left at each of `times` (Unix seconds; None where nothing could be judged,
    and past now), beside `ideal`, the budget left had it been spent evenly."""

    start: float  # the chart's left edge: the period's start, or now minus the rolling window
    end: float  # its right edge: the period's end, or now
    now: float
    times: tuple[float, ...]
    remaining: tuple[float | None, ...]
    ideal: tuple[float, ...]

    @property
    def last(self) -> float | None:
        """The budget left now (the last known point)."""
        return next((v for v in reversed(self.remaining) if v is not None), None)


@dataclass(frozen=True)
class DaySli:
    start: float  # the day's start (Unix seconds), in the zone the days are taken in
    end: float
    sli: float | None  # None: no events that day (occurrences budgeting)
    counts: Counts


def chart_span(slo: Slo, now: datetime) -> tuple[datetime, datetime]:
    """The burn-down's left and right edges at `now`."""
    window = budget.budget_window(slo, now)
    if slo.rolling_seconds is not None:
        return window.start, now
    return window.start, window.start + timedelta(seconds=window.length)


def hours_needed_since(slo: Slo, now: datetime) -> datetime:
    """The oldest hour the burn-down reads: two rolling windows back, or the period's start."""
    start, _ = chart_span(slo, now)
    if slo.rolling_seconds is not None:
        start -= timedelta(seconds=slo.rolling_seconds)
    return _hour_floor(start)


class _Sums:
    """Running sums over hours [first, last], for the counts of any span of whole hours."""

    def __init__(self, hours: Mapping[int, Counts], first: int, last: int) -> None:
        self.first = first
        self.sums: list[tuple[float, float, int, int]] = [(0.0, 0.0, 0, 0)]
        g = t = 0.0
        s = b = 0
        for hour in range(first, last + 1):
            got = hours.get(hour)
            if got is not None:
                g, t, s, b = g + got.good, t + got.total, s + got.slices, b + got.bad_slices
            self.sums.append((g, t, s, b))

    def between(self, start: float, end: float) -> Counts:
        """The hours starting in [start, end) (Unix seconds)."""
        top = len(self.sums) - 1

        def index(at: float) -> int:
            return min(max(math.ceil(at / HOUR) - self.first, 0), top)

        lo, hi = self.sums[index(start)], self.sums[index(end)]
        return Counts(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], hi[3] - lo[3])


def burn_down(slo: Slo, hours: Mapping[int, Counts], now: datetime, *, last: float | None = None,
              most: int = MAX_POINTS) -> BurnDown:
    """The burn-down of `slo` at `now` from its `hours`; `last`: the budget left now as the
    status has it (else the hours' sum at now)."""
    start_dt, end_dt = chart_span(slo, now)
    start, end, at_now = start_dt.timestamp(), end_dt.timestamp(), now.timestamp()
    rolling = slo.rolling_seconds
    length = rolling if rolling is not None else end - start
    first_hour = math.floor((start - (rolling or 0.0)) / HOUR)
    sums = _Sums(hours, first_hour, math.floor(at_now / HOUR))
    step = HOUR * max(1, math.ceil((end - start) / HOUR / most))
    times = [float(t) for t in range(math.ceil(start / step) * step, math.ceil(at_now), step) if t > start]
    times = [start, *times, at_now] if start < at_now else [at_now]
    remaining: list[float | None] = []
    for t in times:
        since = t - rolling if rolling is not None else start
        window = BudgetWindow(datetime.fromtimestamp(since, UTC), datetime.fromtimestamp(t, UTC), length)
        remaining.append(budget.budget_remaining(slo, sums.between(since, t), window))
    if last is not None:
        remaining[-1] = last
    if end > at_now:  # a calendar period still running: the ideal line goes on to its end
        times.append(end)
        remaining.append(None)
    span = max(end - start, 1.0)
    ideal = tuple(1.0 - (t - start) / span for t in times)
    return BurnDown(start, end, at_now, tuple(times), tuple(remaining), ideal)


def days(slo: Slo, hours: Mapping[int, Counts], start: datetime, now: datetime) -> list[DaySli]:
    """The SLI of each day from `start`'s day to `now`'s, the first and last cut at `start` and
    `now`; days in the calendar's zone, else UTC."""
    zone = ZoneInfo(slo.calendar.timezone if slo.calendar is not None else "UTC")
    day = start.astimezone(zone).date()
    found = []
    first, last = start.timestamp(), now.timestamp()
    sums = _Sums(hours, math.floor(first / HOUR) - 1, math.floor(last / HOUR))
    while True:
        begins = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
        day += timedelta(days=1)
        ends = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
        if begins >= last:
            break
        got = sums.between(max(begins, _hour_floor_ts(first)), min(ends, last))
        found.append(DaySli(max(begins, first), min(ends, last), day_sli(slo, got, ends - begins), got))
    return found


def day_sli(slo: Slo, counts: Counts, seconds: float) -> float | None:
    """A day's good share: events, or for time slices its good slices among the day's."""
    if slo.budgeting == "timeslices":
        return 1.0 - min(1.0, counts.bad_slices / budget.slices_in(slo, seconds))
    return min(1.0, counts.good / counts.total) if counts.total > 0 else None


def _hour_floor(at: datetime) -> datetime:
    return datetime.fromtimestamp(_hour_floor_ts(at.timestamp()), UTC)


def _hour_floor_ts(at: float) -> float:
    return math.floor(at / HOUR) * HOUR
