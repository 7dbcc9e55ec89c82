"""Daily uptime of components from their checks' state changes. Pure: values in, values out.

A component is *down* while at least one of its checks is CRITICAL (its state is the worst of
its checks, as `opsplane health` says), and *observed* while at least one of its checks has a
known state. A day's uptime is the share of its observed time that was not down; a day with no
observed time has no uptime at all ("no data"), which is how the days before monitoring started
read. Today counts up to `now`.

The inputs are the `check.state_changed` events of the window (each with the state before and
after) and the checks' current rows: a check with no change in the window kept its current
state throughout, if that state is older than the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

CRITICAL = "CRITICAL"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class StateChange:
    """One `check.state_changed` event: `before` is None for the check's first result ever."""

    check_id: str
    component: str
    at: datetime
    before: str | None
    after: str


@dataclass(frozen=True)
class CurrentState:
    """A check's row in `check_states`: its state, and since when."""

    check_id: str
    component: str
    state: str
    since: datetime


@dataclass(frozen=True)
class DayUptime:
    """One bar: `fraction` is None when nothing was observed that day."""

    day: date
    observed: float  # seconds
    down: float  # seconds

    @property
    def fraction(self) -> float | None:
        return None if self.observed <= 0 else max(0.0, 1.0 - self.down / self.observed)


def day_range(now: datetime, days: int) -> list[date]:
    """The `days` UTC days ending with today, oldest first."""
    today = now.astimezone(UTC).date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def window_start(now: datetime, days: int) -> datetime:
    """Midnight UTC of the first of the `days` days: where the events query starts."""
    return datetime.combine(day_range(now, days)[0], time(), tzinfo=UTC)


def uptime_by_component(
    components: Iterable[str],
    changes: Iterable[StateChange],
    current: Iterable[CurrentState],
    *,
    now: datetime,
    days: int = 90,
) -> dict[str, list[DayUptime]]:
    """For each of `components`, one DayUptime per day of `day_range(now, days)`."""
    start = window_start(now, days)
    timelines: dict[str, dict[str, list[tuple[datetime, str | None]]]] = {c: {} for c in components}
    by_check: dict[str, list[StateChange]] = {}
    for change in changes:
        if change.component in timelines and start <= change.at <= now:
            by_check.setdefault(change.check_id, []).append(change)
    rows = {row.check_id: row for row in current if row.component in timelines}
    for check_id in set(by_check) | set(rows):
        found = sorted(by_check.get(check_id, []), key=lambda c: c.at)
        component = found[0].component if found else rows[check_id].component
        timelines[component][check_id] = _check_timeline(found, rows.get(check_id), start)
    return {component: _days(checks, start, now, days) for component, checks in timelines.items()}


def _check_timeline(changes: list[StateChange], row: CurrentState | None,
                    start: datetime) -> list[tuple[datetime, str | None]]:
    """(from when, state) steps of one check over the window; None is "not observed"."""
    if changes:
        steps: list[tuple[datetime, str | None]] = [(start, changes[0].before)]
        steps += [(change.at, change.after) for change in changes]
        return steps
    if row is None:
        return []
    # No change in the window: the current state held since its `since` (or the whole window).
    return [(start, row.state)] if row.since <= start else [(start, None), (row.since, row.state)]


def _days(checks: Mapping[str, list[tuple[datetime, str | None]]], start: datetime, now: datetime,
          days: int) -> list[DayUptime]:
    """Sweep every step of every check and every midnight in time order, adding each span to
    its day: a span never crosses midnight, because every midnight is a point of the sweep."""
    points: list[tuple[datetime, str, str | None]] = [
        (at, check_id, state) for check_id, steps in checks.items() for at, state in steps]
    midnights = [start + DAY * n for n in range(1, days)]
    times = sorted({at for at, _, _ in points} | set(midnights) | {start, now})
    points.sort(key=lambda p: p[0])
    observed = [0.0] * days
    down = [0.0] * days
    states: dict[str, str | None] = {}
    known = critical = 0  # how many checks have a state, how many of them are CRITICAL
    index = 0
    for begin, end in zip(times, times[1:], strict=False):
        while index < len(points) and points[index][0] <= begin:
            _, check_id, state = points[index]
            before = states.get(check_id)
            known += (state is not None) - (before is not None)
            critical += (state == CRITICAL) - (before == CRITICAL)
            states[check_id] = state
            index += 1
        if begin >= now:
            break
        if known:
            span = (min(end, now) - begin).total_seconds()
            day = int((begin - start) / DAY)
            observed[day] += span
            if critical:
                down[day] += span
    return [DayUptime(day, observed[n], down[n]) for n, day in enumerate(day_range(now, days))]


def overall(days: Iterable[DayUptime]) -> float | None:
    """Uptime over all observed time of `days`, or None when nothing was observed."""
    observed = down = 0.0
    for day in days:
        observed += day.observed
        down += day.down
    return None if observed <= 0 else max(0.0, 1.0 - down / observed)
