"""When a deploy may start in an environment: weekly windows, freezes and approvals.

A `WindowPolicy` opens weekly windows in the environment's own time zone (none: any time) and
closes them again for freezes: weekly ones (Friday afternoon to Monday), listed holidays, and
named events such as a sales week. `decide` answers for one instant with a sentence a person
reads and the next instant a deploy could start. Times are passed in; nothing here reads a clock.

Local times follow the zone's daylight-saving rules: a window at 10:00 opens at 10:00 on the wall
clock in winter and in summer. A local time that does not exist (inside the spring gap) means the
first instant after the gap; one that exists twice (the autumn hour) means its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from opsplane.config.types import Strict, TimeOfDay, TimeZone
from opsplane.errors import OpsplaneError

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON = timedelta(days=366)
_NEAR = timedelta(days=15)  # looked at first; the whole horizon only when nothing opens sooner
_BEFORE = timedelta(days=8)  # a weekly freeze or window that began before the instant still counts
FreezeName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]


class WindowError(OpsplaneError):
    """A deployment window was asked about in a way it cannot answer."""

    exit_code = 3


class WeeklyWindow(Strict):
    days: list[Weekday] = Field(min_length=1, description="Days it opens on, e.g. [tue, wed, thu].")
    start: TimeOfDay = Field(description="Local time it opens (HH:MM).")
    end: TimeOfDay = Field(
        description="Local time it closes (HH:MM); one at or before `start` (00:00, say) is on the next day."
    )


class WeeklyFreeze(Strict):
    name: FreezeName = Field(description="What the freeze is called in decisions and events, e.g. weekend.")
    start_day: Weekday = Field(description="Day it begins, e.g. fri.")
    start: TimeOfDay = Field(time(0), description="Local time it begins on start_day (default 00:00).")
    end_day: Weekday = Field(description="Day it ends, e.g. mon.")
    end: TimeOfDay = Field(
        time(0), description="Local time it ends on end_day (default 00:00); the same day and an end at or "
        "before the start means a week later.",
    )


class HolidayFreeze(Strict):
    name: FreezeName = Field(description="What the freeze is called, e.g. christmas.")
    dates: list[date] = Field(
        min_length=1, description="Whole local days frozen, e.g. [2026-12-24, 2026-12-25]."
    )


class EventFreeze(Strict):
    name: FreezeName = Field(description="What the freeze is called, e.g. black-friday.")
    start: datetime = Field(description="When it begins; without an offset, in the policy's time zone.")
    end: datetime = Field(description="When it ends (not included); without an offset, in the policy's zone.")

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> EventFreeze:
        if (self.start.tzinfo is None) == (self.end.tzinfo is None) and self.end <= self.start:
            raise ValueError(f"freeze {self.name} ends ({self.end}) before it starts ({self.start})")
        return self


class Freezes(Strict):
    weekly: list[WeeklyFreeze] = Field(default_factory=list, description="Freezes every week (default none).")
    holidays: list[HolidayFreeze] = Field(default_factory=list, description="Frozen dates (default none).")
    events: list[EventFreeze] = Field(
        default_factory=list, description="Frozen stretches with a start and an end (default none)."
    )


class WindowPolicy(Strict):
    """When deploys to one environment may start."""

    timezone: TimeZone = Field("UTC", description="IANA time zone of the windows and freezes (default UTC).")
    windows: list[WeeklyWindow] = Field(
        default_factory=list, description="Weekly windows deploys may start in; none (the default) means any "
        "time that is not frozen.",
    )
    freezes: Freezes = Field(
        default_factory=Freezes, description="Times no deploy may start, windows or not (default none)."
    )
    approvals: int = Field(0, ge=0, description="Approvals a deploy needs before it starts (default 0).")


PRODUCTION = WindowPolicy(
    windows=[WeeklyWindow(days=["tue", "wed", "thu"], start=time(10), end=time(16))],
    freezes=Freezes(weekly=[WeeklyFreeze(name="weekend", start_day="fri", start=time(12), end_day="mon")]),
)


def default_policies() -> dict[str, WindowPolicy]:
    """The manual's rules: production deploys Tuesday to Thursday 10:00-16:00 UTC, frozen from
    Friday 12:00 until Monday; staging and development at any time (`policy_for` gives any
    other environment the same)."""
    return {"production": PRODUCTION, "staging": WindowPolicy(), "development": WindowPolicy()}


def policy_for(policies: dict[str, WindowPolicy], environment: str) -> WindowPolicy:
    """The environment's policy; one not named is unrestricted."""
    return policies.get(environment, WindowPolicy())


@dataclass(frozen=True)
class WindowDecision:
    """Whether a deploy may start at the instant asked about. `next_open` is that instant when
    the windows and freezes allow it now, else the next instant they do (None: not within 366
    days); `blocking` names what stops it: a freeze, "window" or "approvals"; `open_until` is
    when an open stretch ends (None: not within 366 days)."""

    allowed: bool
    reason: str
    next_open: datetime | None
    blocking: str | None
    open_until: datetime | None = None


@dataclass(frozen=True)
class _Span:
    start: datetime
    end: datetime
    name: str = ""


def decide(policy: WindowPolicy, at: datetime, *, approvals: int = 0) -> WindowDecision:
    """Whether a deploy under `policy` may start at `at` (a time with its offset), given the
    approvals it has."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise WindowError(f"{at.isoformat()} has no UTC offset: give the instant with one, e.g. "
                          f"{at.isoformat()}+00:00")
    zone = ZoneInfo(policy.timezone)
    at = at.astimezone(UTC)
    for ahead in (_NEAR, HORIZON):
        frozen = [s for s in _freezes(policy, zone, at - _BEFORE, at + ahead) if s.start <= at < s.end]
        spans = _open_spans(policy, zone, at - _BEFORE, at + ahead)
        current = next((s for s in spans if s.start <= at < s.end), None)
        upcoming = next((s.start for s in spans if s.start > at), None)
        reaches_edge = current is not None and current.end >= at + ahead
        if (current is not None or upcoming is not None) and not reaches_edge:
            break
    next_open = at if current else upcoming
    if next_open is not None and next_open > at + HORIZON:
        next_open = None
    opens = _opens(next_open, zone)
    if frozen:
        names, thaws = _frozen_stretch(frozen, list(_freezes(policy, zone, at - _BEFORE, at + HORIZON)))
        return WindowDecision(False, f"frozen: {', '.join(names)} until {_when(thaws, zone)}; {opens}",
                              next_open, names[0])
    if current is None:
        return WindowDecision(False, f"outside the deployment window ({_describe(policy)}); {opens}",
                              next_open, "window")
    until = current.end if current.end < at + HORIZON else None
    stretch = f"until {_when(until, zone)}" if until else "for at least 366 days"
    where = (f"inside the deployment window ({_describe(policy)})" if policy.windows
             else "not frozen, and no window limits deploys")
    if approvals < policy.approvals:
        needs = f"needs {policy.approvals} approval{'s' if policy.approvals != 1 else ''}, has {approvals}"
        return WindowDecision(False, f"{needs}; {where}, open {stretch}", at, "approvals", until)
    return WindowDecision(True, f"{where}, open {stretch}", at, None, until)


def _frozen_stretch(current: Sequence[_Span], freezes: Sequence[_Span]) -> tuple[list[str], datetime]:
    """The names of the freezes that follow on from the `current` ones without a gap, the
    longest-lasting current one first, and when the last of them ends."""
    names = [max(current, key=lambda s: s.end).name]
    until = max(s.end for s in current)
    for span in sorted(freezes, key=lambda s: s.start):
        if span.start <= until < span.end:
            until = span.end
            names += [span.name] if span.name not in names else []
    return names, until


def _opens(next_open: datetime | None, zone: ZoneInfo) -> str:
    return f"the next opens {_when(next_open, zone)}" if next_open else "none opens within 366 days"


def _when(instant: datetime, zone: ZoneInfo) -> str:
    local = instant.astimezone(zone)
    return f"{local:%a %Y-%m-%d %H:%M} {local.tzname()}"


def _describe(policy: WindowPolicy) -> str:
    """The windows as people write them: 'Tue-Thu 10:00-16:00 UTC'."""
    parts = [f"{_day_ranges(w.days)} {w.start:%H:%M}-{w.end:%H:%M}" for w in policy.windows]
    return f"{', '.join(parts)} {policy.timezone}"


def _day_ranges(days: Sequence[Weekday]) -> str:
    """'Tue-Thu' for three days or more in a row, 'Mon, Wed' otherwise."""
    runs: list[list[int]] = []
    for number in sorted({WEEKDAYS.index(day) for day in days}):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    names: list[str] = []
    for run in runs:
        titles = [WEEKDAYS[number].title() for number in run]
        names += [f"{titles[0]}-{titles[-1]}"] if len(run) > 2 else titles
    return ", ".join(names)


def _open_spans(policy: WindowPolicy, zone: ZoneInfo, start: datetime, end: datetime) -> list[_Span]:
    """The stretches between `start` and `end` in which the windows are open and nothing is
    frozen, in order."""
    windows = _merge(_windows(policy, zone, start, end)) if policy.windows else [_Span(start, end)]
    freezes = _merge(_freezes(policy, zone, start, end))
    spans: list[_Span] = []
    for window in windows:
        cursor = window.start
        for freeze in freezes:
            if freeze.end <= cursor or freeze.start >= window.end:
                continue
            if freeze.start > cursor:
                spans.append(_Span(cursor, freeze.start))
            cursor = max(cursor, freeze.end)
        if cursor < window.end:
            spans.append(_Span(cursor, window.end))
    return spans


def _merge(spans: Iterable[_Span]) -> list[_Span]:
    merged: list[_Span] = []
    for span in sorted(spans, key=lambda s: s.start):
        if merged and span.start <= merged[-1].end:
            merged[-1] = _Span(merged[-1].start, max(merged[-1].end, span.end))
        else:
            merged.append(span)
    return merged


def _days(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[date]:
    day, last = start.astimezone(zone).date() - timedelta(days=1), end.astimezone(zone).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def _windows(policy: WindowPolicy, zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[_Span]:
    for day in _days(zone, start, end):
        for window in policy.windows:
            if WEEKDAYS[day.weekday()] in window.days:
                closes = day + timedelta(days=1) if window.end <= window.start else day
                yield _Span(_instant(day, window.start, zone), _instant(closes, window.end, zone))


def _freezes(policy: WindowPolicy, zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[_Span]:
    for day in _days(zone, start, end):
        for weekly in policy.freezes.weekly:
            if WEEKDAYS[day.weekday()] == weekly.start_day:
                ahead = (WEEKDAYS.index(weekly.end_day) - day.weekday()) % 7
                if ahead == 0 and weekly.end <= weekly.start:
                    ahead = 7
                yield _Span(_instant(day, weekly.start, zone),
                            _instant(day + timedelta(days=ahead), weekly.end, zone), weekly.name)
    for holiday in policy.freezes.holidays:
        for day in holiday.dates:
            yield _Span(_instant(day, time(0), zone), _instant(day + timedelta(days=1), time(0), zone),
                        holiday.name)
    for event in policy.freezes.events:
        yield _Span(_aware(event.start, zone), _aware(event.end, zone), event.name)


def _aware(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else _instant(moment.date(), moment.time(), zone)


def _instant(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time: its first occurrence when the autumn change repeats
    it, the end of the gap when the spring change skips it."""
    local = datetime.combine(day, wall, tzinfo=zone)
    instant = local.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return instant
    early = int(local.replace(fold=1).astimezone(UTC).timestamp())  # before the change
    late = int(instant.timestamp()) + 1  # after it
    after = datetime.fromtimestamp(late, zone).utcoffset()
    while late - early > 1:
        middle = (early + late) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after:
            late = middle
        else:
            early = middle
    return datetime.fromtimestamp(late, UTC)
