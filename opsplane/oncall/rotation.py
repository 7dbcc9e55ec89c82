"""Who is on call: weekly rotations at a local handoff time, with overrides and swaps on top.

Everything here is a pure function of the inventory, the recorded changes and the instant
asked about. Handoffs are computed in the schedule's own zone, so a Monday 09:00 handoff in
Europe/Berlin stays at 09:00 on the wall clock across daylight-saving changes (the shift around
the change is an hour shorter or longer). Instants are compared in UTC only: two datetimes
sharing a zoneinfo compare by wall time and would get the repeated autumn hour wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from opsplane.oncall.models import WEEKDAYS, OncallSettings, Schedule

WEEK = timedelta(days=7)


@dataclass(frozen=True)
class Override:
    """Someone else on call for a layer between `start` and `end` (UTC, end exclusive)."""

    schedule: str
    layer: str
    person: str
    start: datetime
    end: datetime
    source: str = "override"  # "config", "override" or "swap"
    actor: str | None = None

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True)
class Swap:
    """Two shifts of a layer trade people; each shift is named by any instant inside it."""

    schedule: str
    layer: str
    first: datetime
    second: datetime
    actor: str | None = None


Change = Override | Swap


@dataclass(frozen=True)
class Shift:
    """One stretch of a layer with one person on call; `source` says why it is that person."""

    schedule: str
    layer: str
    person: str
    start: datetime
    end: datetime
    source: str = "rotation"

    def as_dict(self) -> dict[str, str]:
        return {"schedule": self.schedule, "layer": self.layer, "person": self.person,
                "start": self.start.isoformat(), "end": self.end.isoformat(), "source": self.source}


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("an instant must carry its time zone")
    return at.astimezone(UTC)


def _handoff_instant(schedule: Schedule, day: date) -> datetime:
    """The UTC instant of the handoff on local date `day`. A handoff time that the clock skips
    (spring forward) happens as the clock reads just after the gap."""
    local = datetime.combine(day, schedule.handoff.time, tzinfo=ZoneInfo(schedule.timezone))
    return local.astimezone(UTC)


def shift_day(schedule: Schedule, at: datetime) -> date:
    """The local date of the handoff that began the shift containing `at`."""
    at = _utc(at)
    weekday = WEEKDAYS.index(schedule.handoff.day)
    local = at.astimezone(ZoneInfo(schedule.timezone))
    day = local.date() - timedelta(days=(local.weekday() - weekday) % 7)
    if _handoff_instant(schedule, day) > at:
        day -= WEEK
    return day


def shift_bounds(schedule: Schedule, at: datetime) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the weekly shift containing `at`."""
    day = shift_day(schedule, at)
    return _handoff_instant(schedule, day), _handoff_instant(schedule, day + WEEK)


def rotation_person(schedule: Schedule, layer: str, at: datetime) -> str:
    """Whose turn the rotation makes it at `at`, before overrides. The rotation runs on in both
    directions from the layer's start, so the question always has an answer."""
    spec = schedule.layers[layer]
    weekday = WEEKDAYS.index(schedule.handoff.day)
    first = spec.start + timedelta(days=(weekday - spec.start.weekday()) % 7)
    index = (shift_day(schedule, at) - first).days // 7
    return spec.rotation[index % len(spec.rotation)]


class Roster:
    """The inventory's schedules with the recorded changes applied: the one place that answers
    "who is on call". Later changes win over earlier ones, and every recorded change over the
    inventory's own overrides."""

    def __init__(self, settings: OncallSettings, changes: Sequence[Change] = ()) -> None:
        self.settings = settings
        self._overrides: dict[tuple[str, str], list[Override]] = {}
        for name, schedule in settings.schedules.items():
            zone = ZoneInfo(schedule.timezone)
            for planned in schedule.overrides:
                start = planned.start if planned.start.tzinfo else planned.start.replace(tzinfo=zone)
                end = planned.end if planned.end.tzinfo else planned.end.replace(tzinfo=zone)
                self._add(Override(name, planned.layer, planned.person, _utc(start), _utc(end), "config"))
        for change in changes:
            for override in self._expand(change):
                self._add(override)

    def _add(self, override: Override) -> None:
        self._overrides.setdefault((override.schedule, override.layer), []).append(override)

    def _expand(self, change: Change) -> Iterable[Override]:
        """A swap becomes two overrides, computed against the plain rotation."""
        if isinstance(change, Override):
            yield Override(change.schedule, change.layer, change.person, _utc(change.start),
                           _utc(change.end), change.source, change.actor)
            return
        schedule = self.settings.schedules.get(change.schedule)
        if schedule is None or change.layer not in schedule.layers:
            return  # the schedule or layer left the inventory since the swap was recorded
        first, second = shift_bounds(schedule, change.first), shift_bounds(schedule, change.second)
        first_person = rotation_person(schedule, change.layer, change.first)
        second_person = rotation_person(schedule, change.layer, change.second)
        yield Override(change.schedule, change.layer, second_person, *first, "swap", change.actor)
        yield Override(change.schedule, change.layer, first_person, *second, "swap", change.actor)

    def schedule(self, name: str) -> Schedule:
        return self.settings.schedules[name]

    def _who(self, schedule: str, layer: str, at: datetime) -> tuple[str, str]:
        for override in reversed(self._overrides.get((schedule, layer), [])):
            if override.covers(at):
                return override.person, override.source
        return rotation_person(self.schedule(schedule), layer, at), "rotation"

    def on_call(self, schedule: str, layer: str, at: datetime) -> Shift:
        """The stretch of `layer` containing `at`, with its person; KeyError for an unknown
        schedule or layer."""
        at = _utc(at)
        if layer not in self.schedule(schedule).layers:
            raise KeyError(layer)
        for shift in self.shifts(schedule, layer, at, at + timedelta(microseconds=1)):
            if shift.start <= at < shift.end:
                return shift
        raise AssertionError("shifts cover every instant")  # pragma: no cover

    def shifts(self, schedule: str, layer: str, start: datetime, end: datetime) -> list[Shift]:
        """The stretches of `layer` that overlap [start, end), whole (the first may begin before
        `start`, the last end after `end`): one per weekly shift, split where an override
        begins or ends."""
        spec = self.schedule(schedule)
        start, end = _utc(start), _utc(end)
        first_start, _ = shift_bounds(spec, start)
        _, last_end = shift_bounds(spec, end - timedelta(microseconds=1))
        handoffs = set(_handoffs(spec, first_start, last_end))
        edges = set(handoffs)
        for override in self._overrides.get((schedule, layer), []):
            edges.update(t for t in (override.start, override.end) if first_start < t < last_end)
        ordered = sorted(edges)
        result: list[Shift] = []
        for a, b in zip(ordered, ordered[1:], strict=False):
            person, source = self._who(schedule, layer, a)
            last = result[-1] if result else None
            if last and a not in handoffs and (last.person, last.source) == (person, source):
                result[-1] = Shift(schedule, layer, person, last.start, b, source)
            else:
                result.append(Shift(schedule, layer, person, a, b, source))
        # whole stretches only: drop those that end before `start` once split by overrides
        return [s for s in result if s.end > start and s.start < end]


def _handoffs(schedule: Schedule, first: datetime, last: datetime) -> Iterable[datetime]:
    """Handoff instants from `first` to `last` inclusive; `first` is itself a handoff."""
    day = shift_day(schedule, first)
    while (instant := _handoff_instant(schedule, day)) <= last:
        yield instant
        day += WEEK
