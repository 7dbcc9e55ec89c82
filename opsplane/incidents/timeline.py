"""An incident's timeline, assembled from the event log.

The log already holds what happened: alerts firing and resolving, notifications and their
delivery, probe state changes, deploys, runbook runs, restarts and the incident's own events
(opened, acknowledged, updates, notes). The timeline is the events of the incident's service,
and those naming the incident, from a while before it started until a little after it was
resolved, each described in a line a person reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from opsplane.incidents.models import TimelineEntry

# Deploys and restarts just before an incident are often its cause: look back this far.
LEAD = timedelta(minutes=30)
# Alerts resolving and checks recovering come a little after the incident is resolved.
TAIL = timedelta(minutes=15)
KINDS = ("alert.", "notify.", "check.", "deploy.", "runbook.", "runtime.", "backup.", "restore.",
         "incident.", "maintenance.")
_QUIET = {"alert.pending", "alert.inactive", "notify.muted"}


class EventLike(Protocol):
    id: int
    ts: datetime
    actor: str
    kind: str
    target: str
    service: str | None
    outcome: str
    details: dict[str, Any]


def window(started_at: datetime, detected_at: datetime | None,
           resolved_at: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """The stretch of the log an incident's timeline covers."""
    begin = min(started_at, detected_at or started_at) - LEAD
    end = resolved_at + TAIL if resolved_at else now
    return begin, end


def assemble(events: Iterable[EventLike]) -> list[TimelineEntry]:
    """The events worth a line, oldest first, each described."""
    entries = [TimelineEntry(e.ts, e.kind, describe(e), e.actor, e.id, dict(e.details))
               for e in events if e.kind.startswith(KINDS) and e.kind not in _QUIET]
    return sorted(entries, key=lambda entry: (entry.at, entry.event_id))


def describe(event: EventLike) -> str:
    """One line about one event, in the words of the operator."""
    d = event.details
    kind = event.kind
    if kind == "alert.firing":
        summary = (d.get("annotations") or {}).get("summary")
        return f"Alert {event.target} firing" + (f": {summary}" if summary else "")
    if kind == "alert.resolved":
        return f"Alert {event.target} resolved"
    if kind in ("alert.notified", "alert.notify_failed"):
        names = ", ".join(str(a.get("name")) for a in [*d.get("firing", []), *d.get("resolved", [])])
        done = "Notified" if kind == "alert.notified" else "Failed to notify"
        return f"{done} {event.target}" + (f" of {names}" if names else "")
    if kind.startswith("notify."):
        return f"Notification {event.target} {event.outcome}"
    if kind == "check.state_changed":
        reason = f" ({d['reason']})" if d.get("reason") else ""
        check = d.get("check", event.target)
        return f"Check {check} of {event.service}: {d.get('from')} -> {d.get('to')}{reason}"
    if kind == "incident.opened":
        return f"Incident opened ({d.get('severity')}): {d.get('title')}"
    if kind == "incident.acknowledged":
        return f"Acknowledged; commander {d.get('commander')}"
    if kind in ("incident.updated", "incident.resolved"):
        word = "Resolved" if kind == "incident.resolved" else f"Status {d.get('status')}"
        return f"{word}: {d.get('summary', '')}".rstrip(": ")
    if kind == "incident.note":
        return f"Note: {d.get('note', '')}"
    if kind == "incident.alert_joined":
        return f"Alert {d.get('alert')} ({d.get('severity')}) joined the incident"
    if kind == "incident.severity_raised":
        return f"Severity raised from {d.get('from')} to {d.get('to')} by {d.get('by')}"
    if kind == "incident.update_due":
        return f"Status update due; reminded {d.get('commander') or 'nobody (no commander)'}"
    if kind == "incident.action_added":
        return f"Action item: {d.get('title')} (owner {d.get('owner')})"
    if kind == "incident.action_done":
        return f"Action item done: {d.get('title')}"
    return f"{kind} {event.target}: {event.outcome}"
