"""Error-budget arithmetic: pure functions of an SLO, counts of events (or slices) and `now`.

An SLO promises `objective` of its events good over its window; the error budget is the rest,
`1 - objective`. With occurrences budgeting the budget is spent by bad events: a 30-day window
at 99.9 % with a million requests allows a thousand failures, and budget consumed is the bad
share over the budget (1.0 when exactly a thousand failed). With time slices the window is cut
into slices of `timeslice`; a slice is bad when its own good share is below `slice_target` (a
slice without events is good), and the budget is that share of all the window's slices.

Burn rate over a window is how fast the budget goes: the bad share in that window over the
budget, so 1 spends it exactly in a window's length and 14.4 spends a 30-day budget's 2 % in
an hour. Counts are given as `Counts` (the recorder sums its minutes and hours into them) or
as per-minute tuples for `counts_of`, which the tests and the monthly report use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from opsplane.slo.models import Slo

Minute = tuple[float, float, float]
"""(start of the minute in Unix seconds, good events in it, all events in it)."""


@dataclass(frozen=True)
class Counts:
    """What happened in some span of time: events good and in all, and the time slices that
    ended in it (`slices` those that had events; `bad_slices` those below the slice target)."""

    good: float = 0.0
    total: float = 0.0
    slices: int = 0
    bad_slices: int = 0

    @property
    def bad(self) -> float:
        return max(0.0, self.total - self.good)

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.good + other.good, self.total + other.total, self.slices + other.slices,
                      self.bad_slices + other.bad_slices)


@dataclass(frozen=True)
class BudgetWindow:
    """The span an SLO is judged over at `now`: from `start` to `now`, in a budget period of
    `length` seconds (the rolling window's length, or the whole calendar month or quarter,
    whose budget is the month's however much of it has passed)."""

    start: datetime
    now: datetime
    length: float

    @property
    def elapsed(self) -> float:
        return max(0.0, (self.now - self.start).total_seconds())


def budget_window(slo: Slo, now: datetime) -> BudgetWindow:
    """The window `slo` is judged over at `now` (aware, any zone)."""
    rolling = slo.rolling_seconds
    if rolling is not None:
        return BudgetWindow(now - timedelta(seconds=rolling), now, rolling)
    assert slo.calendar is not None
    start = period_start(slo.calendar.unit, slo.calendar.timezone, now)
    end = next_period(slo.calendar.unit, slo.calendar.timezone, start)
    return BudgetWindow(start, now, (end - start).total_seconds())


def period_start(unit: str, zone: str, now: datetime) -> datetime:
    """Midnight on the first day of the month (or quarter) holding `now` in `zone`, in UTC.
    Local midnight is turned into an instant by the zone's rules for that date, so a month that
    starts in winter time and ends in summer time is an hour short, as the wall clock says."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    month = local.month if unit == "month" else 3 * ((local.month - 1) // 3) + 1
    return datetime(local.year, month, 1, tzinfo=tz).astimezone(UTC)


def next_period(unit: str, zone: str, start: datetime) -> datetime:
    """The start of the period after the one starting at `start`, in UTC."""
    tz = ZoneInfo(zone)
    local = start.astimezone(tz)
    months = local.month - 1 + (1 if unit == "month" else 3)
    return datetime(local.year + months // 12, months % 12 + 1, 1, tzinfo=tz).astimezone(UTC)


def error_budget(slo: Slo) -> float:
    """The share of events (or slices) the objective leaves to fail."""
    return 1.0 - slo.objective


def slices_in(slo: Slo, seconds: float) -> float:
    """How many time slices `seconds` hold (at least one, so a short window is never empty)."""
    return max(1.0, seconds / slo.timeslice)


def sli(slo: Slo, counts: Counts, window: BudgetWindow) -> float | None:
    """The good share over the window so far; None with occurrences budgeting and no events
    (nothing to judge). Time slices that passed without a bad one are good."""
    if slo.budgeting == "timeslices":
        return 1.0 - min(1.0, counts.bad_slices / slices_in(slo, window.elapsed))
    if counts.total <= 0:
        return None
    return min(1.0, counts.good / counts.total)


def budget_consumed(slo: Slo, counts: Counts, window: BudgetWindow) -> float | None:
    """The share of the window's error budget spent: 0 untouched, 1 exactly spent, above 1
    overspent. None when nothing can be judged (occurrences budgeting without events)."""
    budget = error_budget(slo)
    if slo.budgeting == "timeslices":
        return counts.bad_slices / (budget * slices_in(slo, window.length))
    if counts.total <= 0:
        return None
    return (counts.bad / counts.total) / budget


def budget_remaining(slo: Slo, counts: Counts, window: BudgetWindow) -> float | None:
    """1 - consumed: the share of the budget left, below 0 when overspent."""
    consumed = budget_consumed(slo, counts, window)
    return None if consumed is None else 1.0 - consumed


def burn_rate(slo: Slo, counts: Counts, seconds: float) -> float:
    """How fast the budget burns over a window of `seconds` holding `counts`: its bad share
    over the error budget (0 without events: nothing burns)."""
    budget = error_budget(slo)
    if slo.budgeting == "timeslices":
        return counts.bad_slices / slices_in(slo, seconds) / budget
    if counts.total <= 0:
        return 0.0
    return (counts.bad / counts.total) / budget


def events(slo: Slo, counts: Counts) -> float:
    """What a burn alert's `min_events` counts: events, or slices that had events."""
    return float(counts.slices) if slo.budgeting == "timeslices" else counts.total


def slice_is_good(good: float, total: float, target: float) -> bool:
    """A time slice reaches its target, or had no events."""
    return total <= 0 or good / total >= target - 1e-12


def counts_of(slo: Slo, minutes: Iterable[Minute], start: float, end: float) -> Counts:
    """The counts of the minutes starting in [start, end): their events, and the time slices
    (aligned on multiples of `timeslice` since the epoch) lying wholly inside [start, end),
    a missing minute counting as one without events."""
    good = total = 0.0
    per_slice: dict[int, list[float]] = {}
    width = slo.timeslice
    for at, g, t in minutes:
        if not start <= at < end:
            continue
        g = min(max(g, 0.0), t)
        good += g
        total += t
        got = per_slice.setdefault(math.floor(at / width), [0.0, 0.0])
        got[0] += g
        got[1] += t
    slices = bad = 0
    first, last = math.ceil(start / width), math.floor(end / width)  # whole slices: [first, last)
    for number, (g, t) in per_slice.items():
        if first <= number < last and t > 0:
            slices += 1
            bad += 0 if slice_is_good(g, t, slo.slice_target) else 1
    return Counts(good, total, slices, bad)
