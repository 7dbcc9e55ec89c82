"""Event routes: the log, filtered by service, kind and time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role
from opsplane.events import service

router = APIRouter(tags=["events"])


@router.get("/events")
async def list_events(
    request: Request,
    service_name: str | None = Query(None, alias="service"),
    kind: str | None = Query(None, description="Exact kind, or a prefix ending in * (check.*)."),
    since: datetime | None = Query(None, description="ISO 8601, inclusive."),
    until: datetime | None = Query(None, description="ISO 8601, exclusive."),
    before_id: int | None = Query(None, description="Page backwards from this id."),
    limit: int = Query(100, ge=1, le=1000),
    _: Principal = Depends(require(Role.VIEWER)),
) -> list[dict[str, Any]]:
    """Events newest first."""
    store = request.app.state.plane.store

    def read() -> list[dict[str, Any]]:
        with store.session() as session:
            return [e.as_dict() for e in service.get_all(
                session, service=service_name, kind=kind, since=_aware(since),
                until=_aware(until), before_id=before_id, limit=limit)]

    return await run_in_threadpool(read)


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
