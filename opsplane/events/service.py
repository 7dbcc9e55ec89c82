"""Recording and reading events. Every domain records through `record`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.clock import Clock, SystemClock
from opsplane.events.tables import Event
from opsplane.store.fit import fit

_system_clock = SystemClock()


def record(
    session: Session,
    *,
    kind: str,
    actor: str,
    target: str,
    outcome: str,
    details: dict[str, Any] | None = None,
    service: str | None = None,
    clock: Clock = _system_clock,
    ts: datetime | None = None,
) -> Event:
    """Append one event; the caller's transaction decides when it lands. Texts longer than
    their columns are cut to fit (ending in "…"); `details` keeps whatever it is given. Its
    id and its place in the hash chain are given when the session flushes (`append.py`)."""
    event = Event(**fit(Event, {
        "ts": ts or clock.now(),
        "actor": actor,
        "kind": kind,
        "target": target,
        "service": service,
        "outcome": outcome,
        "details": details or {},
    }))
    session.add(event)
    return event


def get_all(
    session: Session,
    *,
    service: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> Sequence[Event]:
    """Events newest first. `kind` matches exactly, or by prefix when it ends in '*'
    ('check.*'); `since` is inclusive, `until` exclusive; `before_id` pages backwards."""
    query = select(Event)
    if service is not None:
        query = query.where(Event.service == service)
    if kind:
        if kind.endswith("*"):
            query = query.where(Event.kind.startswith(kind[:-1], autoescape=True))
        else:
            query = query.where(Event.kind == kind)
    if since is not None:
        query = query.where(Event.ts >= since)
    if until is not None:
        query = query.where(Event.ts < until)
    if before_id is not None:
        query = query.where(Event.id < before_id)
    query = query.order_by(Event.id.desc()).limit(limit)
    return session.scalars(query).all()
