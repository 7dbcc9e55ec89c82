"""Runtime changes to the schedules, kept as events in the append-only log.

Overrides, swaps and handoff notes made from the command line are events (`oncall.override`,
`oncall.swap`, `oncall.handoff`) with their actor, so the record that audits need and the
state the schedules read back are the same rows; no table of their own can drift from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsplane.clock import Clock, SystemClock
from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.events.tables import Event
from opsplane.oncall.models import OncallSettings
from opsplane.oncall.rotation import Change, Override, Roster, Swap, shift_bounds

OVERRIDE = "oncall.override"
SWAP = "oncall.swap"
HANDOFF = "oncall.handoff"
_PAGE = 1000
_system_clock = SystemClock()


@dataclass(frozen=True)
class HandoffNote:
    """What the outgoing on-call left for the next shift, and who was on call when."""

    at: datetime
    schedule: str
    note: str
    actor: str
    on_call: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "schedule": self.schedule, "note": self.note,
                "actor": self.actor, "on_call": dict(self.on_call)}


def check_layer(settings: OncallSettings, *, schedule: str, layer: str) -> None:
    """UsageError unless `schedule` and its `layer` are in the inventory."""
    check_schedule(settings, schedule=schedule)
    layers = settings.schedules[schedule].layers
    if layer not in layers:
        raise UsageError(f"schedule {schedule!r} has no layer {layer!r}; it has {', '.join(layers)}")


def check_schedule(settings: OncallSettings, *, schedule: str) -> None:
    if schedule not in settings.schedules:
        known = ", ".join(settings.schedules) or "none: add oncall.schedules to the inventory"
        raise UsageError(f"unknown schedule {schedule!r}; schedules: {known}")


def record_override(
    session: Session,
    *,
    settings: OncallSettings,
    schedule: str,
    layer: str,
    person: str,
    start: datetime,
    end: datetime,
    actor: str,
    clock: Clock = _system_clock,
) -> Override:
    """Put `person` on call for `layer` of `schedule` from `start` to `end`, on the record."""
    check_layer(settings, schedule=schedule, layer=layer)
    if person not in settings.people:
        raise UsageError(f"unknown person {person!r}; people are defined under oncall.people")
    if end <= start:
        raise UsageError("an override must end after it starts")
    override = Override(schedule, layer, person, start, end, "override", actor)
    events.record(session, kind=OVERRIDE, actor=actor, target=f"{schedule}/{layer}", outcome="recorded",
                  details={"schedule": schedule, "layer": layer, "person": person,
                           "start": start.isoformat(), "end": end.isoformat()}, clock=clock)
    return override


def record_swap(
    session: Session,
    *,
    settings: OncallSettings,
    schedule: str,
    layer: str,
    first: datetime,
    second: datetime,
    actor: str,
    clock: Clock = _system_clock,
) -> Swap:
    """Trade the people of the two shifts containing `first` and `second`, on the record."""
    check_layer(settings, schedule=schedule, layer=layer)
    spec = settings.schedules[schedule]
    if shift_bounds(spec, first) == shift_bounds(spec, second):
        raise UsageError("both times fall in the same shift; name two different weeks")
    swap = Swap(schedule, layer, first, second, actor)
    events.record(session, kind=SWAP, actor=actor, target=f"{schedule}/{layer}", outcome="recorded",
                  details={"schedule": schedule, "layer": layer, "first": first.isoformat(),
                           "second": second.isoformat()}, clock=clock)
    return swap


def record_handoff(
    session: Session,
    *,
    settings: OncallSettings,
    schedule: str,
    note: str,
    actor: str,
    clock: Clock = _system_clock,
) -> HandoffNote:
    """Leave a handoff note on `schedule`, with who is on call on each layer as it is written."""
    check_schedule(settings, schedule=schedule)
    if not note.strip():
        raise UsageError("a handoff note needs some text")
    at = clock.now()
    roster = Roster(settings, get_changes(session))
    on_call = {layer: roster.on_call(schedule, layer, at).person
               for layer in settings.schedules[schedule].layers}
    events.record(session, kind=HANDOFF, actor=actor, target=schedule, outcome="recorded",
                  details={"schedule": schedule, "note": note, "on_call": on_call}, ts=at)
    return HandoffNote(at, schedule, note, actor, on_call)


def get_changes(session: Session) -> list[Change]:
    """Every recorded override and swap, oldest first (later ones win)."""
    changes: list[Change] = []
    for event in reversed(list(_oncall_events(session))):
        d = event.details
        if event.kind == OVERRIDE:
            changes.append(Override(d["schedule"], d["layer"], d["person"],
                                    datetime.fromisoformat(d["start"]), datetime.fromisoformat(d["end"]),
                                    "override", event.actor))
        elif event.kind == SWAP:
            changes.append(Swap(d["schedule"], d["layer"], datetime.fromisoformat(d["first"]),
                                datetime.fromisoformat(d["second"]), event.actor))
    return changes


def get_handoffs(session: Session, *, schedule: str | None = None, limit: int = 10) -> list[HandoffNote]:
    """Handoff notes, newest first."""
    notes: list[HandoffNote] = []
    for event in _oncall_events(session, kind=HANDOFF):
        d = event.details
        if schedule is None or d.get("schedule") == schedule:
            notes.append(HandoffNote(event.ts, d["schedule"], d["note"], event.actor, d.get("on_call", {})))
            if len(notes) >= limit:
                break
    return notes


def get_roster(session: Session, *, settings: OncallSettings) -> Roster:
    """The inventory's schedules with every recorded change applied."""
    return Roster(settings, get_changes(session))


def _oncall_events(session: Session, *, kind: str = "oncall.*") -> Iterator[Event]:
    """On-call events newest first, read a page at a time."""
    before: int | None = None
    while True:
        page = events.get_all(session, kind=kind, before_id=before, limit=_PAGE)
        yield from page
        if len(page) < _PAGE:
            return
        before = page[-1].id
