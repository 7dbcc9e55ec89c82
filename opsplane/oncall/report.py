"""What `opsplane oncall` and the API show, as plain dicts: one shape for `--json` and HTTP."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opsplane.oncall import escalation
from opsplane.oncall.models import OncallSettings
from opsplane.oncall.rotation import Roster, Shift
from opsplane.oncall.service import HandoffNote


def shift_dict(shift: Shift, settings: OncallSettings) -> dict[str, Any]:
    """A shift with its person's display name and contact addresses."""
    person = settings.people.get(shift.person)
    return {**shift.as_dict(), "display_name": settings.display_name(shift.person),
            "contact": {str(k): v for k, v in person.contact.items()} if person else {}}


def now_report(
    settings: OncallSettings,
    roster: Roster,
    *,
    at: datetime,
    schedules: list[str],
    last_notes: dict[str, HandoffNote | None],
) -> dict[str, Any]:
    """Who is on call at `at` on each layer of `schedules`, with each schedule's last note."""
    result = []
    for name in schedules:
        note = last_notes.get(name)
        result.append({
            "schedule": name,
            "timezone": settings.schedules[name].timezone,
            "layers": [shift_dict(roster.on_call(name, layer, at), settings)
                       for layer in settings.schedules[name].layers],
            "handoff": note.as_dict() if note else None,
        })
    return {"at": at.isoformat(), "schedules": result}


def upcoming_shifts(
    settings: OncallSettings, roster: Roster, *, schedules: list[str], start: datetime, end: datetime
) -> list[Shift]:
    """The shifts of every layer of `schedules` overlapping [start, end), in time order (layers
    in their inventory order at equal times)."""
    shifts = [s for name in schedules for layer in settings.schedules[name].layers
              for s in roster.shifts(name, layer, start, end)]
    order = {(name, layer): i for name in schedules
             for i, layer in enumerate(settings.schedules[name].layers)}
    return sorted(shifts, key=lambda s: (s.start, s.schedule, order[(s.schedule, s.layer)]))


def escalation_report(
    settings: OncallSettings, roster: Roster, *, severity: str, triggered_at: datetime
) -> dict[str, Any]:
    """Every step `severity` escalates through, with whom each would reach if it fired at
    `triggered_at`."""
    policy = settings.policy_for(severity)
    steps = [escalation.Notification(p.at, p.offset, p.round, p.step,
                                     escalation.resolve_step(policy, p.step, roster, at=p.at))
             for p in escalation.plan(policy, triggered_at=triggered_at)]
    return {"severity": severity, "policy": settings.policy_name_for(severity),
            "triggered_at": triggered_at.isoformat(), "steps": [s.as_dict() for s in steps]}
