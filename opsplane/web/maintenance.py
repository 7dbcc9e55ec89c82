"""Scheduled maintenance notices for the public status page, kept as events in the log.

`opsplane status maintenance add` records a `maintenance.notice_scheduled` event (target: the
notice's id, such as MNT-20260310-a1b2; details: components, start, end, message) and
`opsplane status maintenance cancel` a `maintenance.notice_cancelled` one. No table: the log is
the record, and the status page reads the notices back from it. A notice is shown while it is
upcoming or under way; a component inside an active window reads "under maintenance".
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.events.tables import Event

SCHEDULED = "maintenance.notice_scheduled"
CANCELLED = "maintenance.notice_cancelled"
# Notices are read from events of the last year: one scheduled further ahead than that would
# not be worth announcing yet, and the query stays bounded however old the log grows.
LOOKBACK = timedelta(days=366)
MAX_WINDOW = timedelta(days=14)
MAX_MESSAGE = 1000


@dataclass(frozen=True)
class MaintenanceNotice:
    id: str
    components: tuple[str, ...]
    start: datetime
    end: datetime
    message: str

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def shown(self, now: datetime) -> bool:
        """Upcoming or under way: what the status page lists."""
        return now < self.end

    def as_dict(self, now: datetime) -> dict[str, object]:
        return {"id": self.id, "components": list(self.components), "starts_at": self.start.isoformat(),
                "ends_at": self.end.isoformat(), "message": self.message,
                "state": "in progress" if self.active(now) else "scheduled"}


def notices_from(found: Iterable[Event]) -> list[MaintenanceNotice]:
    """The notices that `found` (scheduled and cancelled events) leave standing, by start."""
    scheduled: dict[str, MaintenanceNotice] = {}
    cancelled: set[str] = set()
    for event in found:
        if event.kind == CANCELLED:
            cancelled.add(event.target)
        elif event.kind == SCHEDULED:
            notice = _notice(event)
            if notice is not None:
                scheduled[notice.id] = notice
    return sorted((n for i, n in scheduled.items() if i not in cancelled), key=lambda n: (n.start, n.id))


def _notice(event: Event) -> MaintenanceNotice | None:
    details = event.details
    try:
        return MaintenanceNotice(id=event.target, components=tuple(details["components"]),
                                 start=datetime.fromisoformat(details["start"]),
                                 end=datetime.fromisoformat(details["end"]),
                                 message=str(details.get("message", "")))
    except (KeyError, TypeError, ValueError):  # a malformed event is skipped, not fatal to the page
        return None


def get_all(session: Session, *, now: datetime) -> list[MaintenanceNotice]:
    """Every notice still standing (not cancelled), from one query over the last year's events."""
    query = (select(Event).where(Event.kind.in_((SCHEDULED, CANCELLED)), Event.ts >= now - LOOKBACK)
             .order_by(Event.id))
    return notices_from(session.scalars(query))


def get_shown(session: Session, *, now: datetime) -> list[MaintenanceNotice]:
    return [n for n in get_all(session, now=now) if n.shown(now)]


def create(session: Session, *, components: Sequence[str], start: datetime, end: datetime,
           message: str, actor: str, now: datetime) -> MaintenanceNotice:
    """Record a notice; the window must end after it starts, in the future, within 14 days."""
    if not components:
        raise UsageError("name at least one component with --component")
    if end <= start:
        raise UsageError(f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    if end <= now:
        raise UsageError("the window is already over; give an --end in the future")
    if end - start > MAX_WINDOW:
        raise UsageError("a maintenance window lasts at most 14 days; announce longer work in parts")
    message = message.strip()
    if not message or len(message) > MAX_MESSAGE:
        raise UsageError(f"give a --message of 1 to {MAX_MESSAGE} characters: customers read it")
    notice = MaintenanceNotice(id=f"MNT-{start:%Y%m%d}-{secrets.token_hex(2)}",
                               components=tuple(dict.fromkeys(components)), start=start, end=end,
                               message=message)
    events.record(session, kind=SCHEDULED, actor=actor, target=notice.id, outcome="success",
                  service=notice.components[0] if len(notice.components) == 1 else None, ts=now,
                  details={"components": list(notice.components), "start": start.isoformat(),
                           "end": end.isoformat(), "message": message})
    return notice


def cancel(session: Session, *, notice_id: str, actor: str, now: datetime) -> MaintenanceNotice:
    standing = {n.id: n for n in get_all(session, now=now)}
    notice = standing.get(notice_id)
    if notice is None:
        known = ", ".join(standing) or "none"
        raise UsageError(f"no standing maintenance notice {notice_id!r} (standing: {known})")
    events.record(session, kind=CANCELLED, actor=actor, target=notice.id, outcome="success", ts=now,
                  details={"components": list(notice.components)})
    return notice
