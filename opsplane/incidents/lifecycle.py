"""The life of an incident as pure functions of its state, the settings and the time.

triggered -> acknowledged -> investigating <-> identified <-> monitoring -> resolved.
A responder may skip ahead (an update saying "identified" on a triggered incident also
acknowledges it); nothing goes back to triggered or acknowledged, and a resolved incident is
closed: a new failure opens a new incident. Nothing here reads a clock or a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from opsplane.errors import UsageError
from opsplane.incidents.models import (
    UPDATE_STATUSES,
    AlertSignal,
    IncidentsSettings,
    IncidentView,
    Status,
    ref,
)

SEVERITY_ORDER = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}


class TransitionRefused(UsageError):
    """The incident cannot go where it was asked to."""


def acknowledge(incident: IncidentView, *, now: datetime, actor: str,
                commander: str | None = None) -> IncidentView:
    """The incident acknowledged at `now`; the acknowledger commands it unless someone does."""
    if incident.status is Status.RESOLVED:
        raise TransitionRefused(f"{ref(incident.id)} is resolved; open a new incident instead")
    if incident.acknowledged_at is not None:
        raise TransitionRefused(f"{ref(incident.id)} was already acknowledged at "
                                f"{incident.acknowledged_at.isoformat(timespec='seconds')}")
    return replace(incident, status=Status.ACKNOWLEDGED, acknowledged_at=now,
                   commander=commander or incident.commander or person(actor))


def move(incident: IncidentView, *, to: Status, now: datetime, actor: str) -> IncidentView:
    """The incident after a status update saying `to`; acknowledges it on the way if needed."""
    if to not in UPDATE_STATUSES:
        allowed = ", ".join(s.value for s in UPDATE_STATUSES)
        raise TransitionRefused(f"a status update says one of {allowed}, not {to.value}")
    if incident.status is Status.RESOLVED:
        raise TransitionRefused(f"{ref(incident.id)} is resolved; open a new incident instead")
    moved = incident
    if incident.acknowledged_at is None:
        moved = acknowledge(incident, now=now, actor=actor)
    moved = replace(moved, status=to)
    if to is Status.RESOLVED:
        moved = replace(moved, resolved_at=now, next_update_at=None)
    return moved


def settled_at(incident: IncidentView) -> datetime | None:
    """When someone took the incident in hand: the earlier of its acknowledgement and its
    resolution; None while neither happened. From then on nobody is paged for it."""
    known = [t for t in (incident.acknowledged_at, incident.resolved_at) if t is not None]
    return min(known) if known else None


def person(actor: str) -> str:
    """'alice' from 'cli:alice' or 'token:alice': the name a commander goes by."""
    return actor.split(":", 1)[1] if ":" in actor else actor


# --- status update reminders ---------------------------------------------------------------------


def next_update_due(severity: str, settings: IncidentsSettings, *, after: datetime,
                    requested: datetime | None = None) -> datetime | None:
    """When the next status update is due: the time the update promised, else the severity's
    cadence after `after`; None when the severity has no cadence and none was promised."""
    if requested is not None:
        return requested
    cadence = settings.policy(severity).update_cadence
    return after + timedelta(seconds=cadence) if cadence else None


def reminder_due(incident: IncidentView, now: datetime) -> bool:
    """True when the commander should be reminded now: an update is overdue and no reminder
    went out for this due time yet."""
    due = incident.next_update_at
    return (incident.status.is_open and due is not None and now >= due
            and incident.reminded_for != due)


def due_reminders(incidents: Iterable[IncidentView], now: datetime) -> list[IncidentView]:
    return [i for i in incidents if reminder_due(i, now)]


# --- alerts to incidents -------------------------------------------------------------------------


def group_key(service: str, labels: Mapping[str, str], group_by: Sequence[str]) -> str:
    """The key under which firing alerts gather into one incident: service plus group labels."""
    parts = [f"{name}={labels.get(name, '')}" for name in group_by]
    return "|".join([service, *parts])


@dataclass(frozen=True)
class Plan:
    """What firing alerts ask for: new incidents (each with its alerts) and alerts that join
    open ones (by incident id), plus severities to raise."""

    open: dict[str, list[AlertSignal]]
    join: dict[int, list[AlertSignal]]
    raise_to: dict[int, str]


def plan(alerts: Sequence[AlertSignal], open_incidents: Sequence[IncidentView],
         settings: IncidentsSettings) -> Plan:
    """Match firing alerts (already known to belong to no incident) to open incidents by
    group key; alerts without one open a new incident per key. A more severe alert raises the
    severity of the incident it joins."""
    by_key = {i.group_key: i for i in open_incidents if i.status.is_open}
    opening: dict[str, list[AlertSignal]] = {}
    joining: dict[int, list[AlertSignal]] = {}
    raise_to: dict[int, str] = {}
    for alert in alerts:
        if alert.severity not in settings.open_for:
            continue
        target = by_key.get(alert.group)
        if target is None:
            opening.setdefault(alert.group, []).append(alert)
            continue
        joining.setdefault(target.id, []).append(alert)
        current = raise_to.get(target.id, target.severity)
        if SEVERITY_ORDER[alert.severity] < SEVERITY_ORDER[current]:
            raise_to[target.id] = alert.severity
    return Plan(opening, joining, raise_to)


def most_severe(alerts: Iterable[AlertSignal]) -> str:
    return min((a.severity for a in alerts), key=SEVERITY_ORDER.__getitem__)
