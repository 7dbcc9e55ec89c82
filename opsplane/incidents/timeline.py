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

from opsplane.events import summary
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
    """One line about one event, in the words of the operator (the same line the dashboard's
    event list shows)."""
    return summary.describe(event)
