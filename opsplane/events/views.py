"""Event routes: the log, filtered by service, kind and time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from opsplane.api.params import ROW_ID_MAX, Instant
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role
from opsplane.events import service

router = APIRouter(tags=["events"])


@router.get("/events")
async def list_events(
    request: Request,
    service_name: str | None = Query(None, alias="service"),
    kind: str | None = Query(None, description="Exact kind, or a prefix ending in * (check.*)."),
    since: Instant | None = Query(None, description="Inclusive."),
    until: Instant | None = Query(None, description="Exclusive."),
    before_id: int | None = Query(None, ge=1, le=ROW_ID_MAX, description="Page backwards from this id."),
    limit: int = Query(100, ge=1, le=1000),
    _: Principal = Depends(require(Role.VIEWER)),
) -> list[dict[str, Any]]:
    """Events newest first."""
    store = request.app.state.plane.store

    def read() -> list[dict[str, Any]]:
        with store.session() as session:
            return [e.as_dict() for e in service.get_all(
                session, service=service_name, kind=kind, since=since, until=until,
                before_id=before_id, limit=limit)]

    return await run_in_threadpool(read)


@router.post("/events/verify")
async def verify_events(request: Request,
                        principal: Principal = Depends(require(Role.ADMIN))) -> dict[str, Any]:
    """Walk the event log's hash chain from its checkpoint to its head; records `events.verified`.

    Admin only: it reads every event in the store (seconds for a million) and is the
    platform's own integrity check, not a view of the log."""
    from opsplane.events.verify import record_verified, verify_store

    plane = request.app.state.plane

    def check() -> dict[str, Any]:
        verification = verify_store(plane.store)
        with plane.store.session() as session:
            record_verified(session, verification, actor=principal.actor, now=plane.clock.now())
        return verification.as_dict()

    return await run_in_threadpool(check)
