"""Daily uptime of components from their checks' state changes. Pure: values in, values out.

A component is *down* while at least one of its checks is CRITICAL (its state is the worst of
its checks, as `opsplane health` says), and *observed* while a control plane was watching and
at least one of its checks had a known state. A day's uptime is the share of its observed time
that was not down; a day with no observed time has no uptime at all ("no data"), which is how
the days before monitoring started read. Today counts up to `now`. Nothing is extrapolated: a
day watched for four minutes has an uptime over those four minutes, and says so through its
`observed` seconds.

The inputs are the `check.state_changed` events of the window (each with the state before and
after), the checks' current rows (a check with no change in the window kept its current state
throughout, if that state is older than the window), and the spans in which a control plane
was running (`Watch`, from its `control_plane.started` and `control_plane.stopped` events):
while none ran, the checks' last states say nothing about the time, so it is not observed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
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
class Watch:
    """A span in which a control plane was running; `end` is None while it still runs."""

    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class DayUptime:
    """One bar: `fraction` is None when nothing was observed that day."""

    day: date
    observed: float  # seconds
    down: float  # seconds

    @property
    def fraction(self) -> float | None:
        return None if self.observed <= 0 else max(0.0, 1.0 - self.down / self.observed)

    def coverage(self, now: datetime) -> float:
        """The share of the day that was observed, counting today only up to `now`: 1.0 for a
        day watched throughout, near 0 for a day with a few minutes of data."""
        start = datetime.combine(self.day, time(), tzinfo=UTC)
        possible = (min(start + DAY, now) - start).total_seconds()
        return 0.0 if possible <= 0 else min(1.0, self.observed / possible)


@dataclass(frozen=True)
class ComponentUptime:
    """A component's days, oldest first, and when it was first observed in them (None: never)."""

    days: tuple[DayUptime, ...]
    since: datetime | None

    @property
    def observed(self) -> float:
        """Seconds observed over all the days."""
        return sum(day.observed for day in self.days)

    @property
    def fraction(self) -> float | None:
        return overall(self.days)


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
    watched: Sequence[Watch] | None = None,
) -> dict[str, ComponentUptime]:
    """For each of `components`, one DayUptime per day of `day_range(now, days)` and the first
    time it was observed. `watched` are the spans a control plane ran, oldest first; None when
    the log has no record of them (every span with a known state then counts as observed)."""
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
    spans = [(start, now)] if watched is None else _clip(watched, start, now)
    return {component: _days(checks, spans, start, now, days)
            for component, checks in timelines.items()}


def watch_spans(lifecycle: Sequence[tuple[datetime, str]], *, running_before: bool | None,
                start: datetime, evidence: Iterable[datetime] = ()) -> list[Watch] | None:
    """The spans a control plane ran, from its lifecycle events of the window in time order
    (`(at, "started" | "stopped")`) and whether it ran when the window began (`running_before`:
    None when no lifecycle event before the window is known). None when there is no record at
    all, so that every span with a known state counts.

    A run that ended without a "stopped" (killed, or the machine lost) is taken to have watched
    until the last thing it recorded among `evidence` (the times of its state changes), never
    until the next start: the time in between is not known."""
    if not lifecycle and running_before is None:
        return None
    if running_before is None:  # the first event of the window says whether it ran before it
        running_before = lifecycle[0][1] == "stopped"
    seen = sorted(evidence)
    spans: list[Watch] = []
    opened: datetime | None = start if running_before else None
    for at, kind in lifecycle:
        if opened is not None:
            if kind == "stopped":
                spans.append(Watch(opened, at))
                opened = None
                continue
            before = bisect_left(seen, at)  # the run's last change comes before the next start
            last = seen[before - 1] if before and seen[before - 1] >= opened else opened
            spans.append(Watch(opened, last))
        if kind == "started":
            opened = at
    if opened is not None:
        spans.append(Watch(opened, None))
    return [span for span in spans if span.end is None or span.end > span.start]


def _clip(watched: Sequence[Watch], start: datetime, now: datetime) -> list[tuple[datetime, datetime]]:
    """The watched spans cut to [start, now], in time order, overlaps merged."""
    spans: list[tuple[datetime, datetime]] = []
    for watch in sorted(watched, key=lambda w: w.start):
        begin, end = max(watch.start, start), min(watch.end or now, now)
        if end <= begin:
            continue
        if spans and begin <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((begin, end))
    return spans


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


def _days(checks: Mapping[str, list[tuple[datetime, str | None]]],
          spans: Sequence[tuple[datetime, datetime]], start: datetime, now: datetime,
          days: int) -> ComponentUptime:
    """Sweep every step of every check, every edge of a watched span and every midnight in time
    order, adding each stretch to its day: a stretch never crosses midnight or a span's edge,
    because each of them is a point of the sweep."""
    points: list[tuple[datetime, str, str | None]] = [
        (at, check_id, state) for check_id, steps in checks.items() for at, state in steps]
    midnights = [start + DAY * n for n in range(1, days)]
    edges = {at for span in spans for at in span}
    times = sorted({at for at, _, _ in points} | set(midnights) | edges | {start, now})
    points.sort(key=lambda p: p[0])
    observed = [0.0] * days
    down = [0.0] * days
    states: dict[str, str | None] = {}
    known = critical = 0  # how many checks have a state, how many of them are CRITICAL
    index = span = 0
    since: datetime | None = None
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
        while span < len(spans) and spans[span][1] <= begin:
            span += 1
        watching = span < len(spans) and spans[span][0] <= begin
        if known and watching:
            since = since or begin
            stretch = (min(end, now) - begin).total_seconds()
            day = int((begin - start) / DAY)
            observed[day] += stretch
            if critical:
                down[day] += stretch
    return ComponentUptime(
        tuple(DayUptime(day, observed[n], down[n]) for n, day in enumerate(day_range(now, days))),
        since)


def overall(days: Iterable[DayUptime]) -> float | None:
    """Uptime over all observed time of `days`, or None when nothing was observed."""
    observed = down = 0.0
    for day in days:
        observed += day.observed
        down += day.down
    return None if observed <= 0 else max(0.0, 1.0 - down / observed)
