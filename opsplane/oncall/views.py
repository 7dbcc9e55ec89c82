"""On-call routes: who is on call, the coming shifts, a severity's escalation; overrides and
handoff notes recorded with the token's name as actor."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from opsplane.api.params import Instant
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role
from opsplane.errors import UsageError

if TYPE_CHECKING:
    from opsplane.oncall.models import OncallSettings

router = APIRouter(tags=["oncall"])
# The service's refusals (an unknown schedule, layer or person, an end before the start) are
# rules of the inventory that the document cannot state: 422 with the reason.


class OverrideRequest(BaseModel):
    schedule: str
    layer: str
    person: str
    start: Instant
    end: Instant


class HandoffRequest(BaseModel):
    schedule: str
    note: str = Field(min_length=1)


@router.get("/oncall")
async def on_call_now(
    request: Request,
    at: Instant | None = Query(None, description="Default: now."),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    """Who is on call on each layer of each schedule, with the last handoff note."""
    from opsplane.oncall import report, service

    plane = request.app.state.plane
    settings: OncallSettings = plane.inventory.oncall
    instant = at or plane.clock.now()

    def read() -> dict[str, Any]:
        with plane.store.session() as session:
            roster = service.get_roster(session, settings=settings)
            notes = {name: next(iter(service.get_handoffs(session, schedule=name, limit=1)), None)
                     for name in settings.schedules}
        return report.now_report(settings, roster, at=instant, schedules=list(settings.schedules),
                                 last_notes=notes)

    return await run_in_threadpool(read)


@router.get("/oncall/shifts")
async def shifts(
    request: Request,
    weeks: int = Query(4, ge=1, le=104),
    start: Instant | None = Query(None, description="Default: now."),
    _: Principal = Depends(require(Role.VIEWER)),
) -> list[dict[str, Any]]:
    """The shifts of the coming weeks, overrides and swaps included."""
    from opsplane.oncall import report, service

    plane = request.app.state.plane
    settings: OncallSettings = plane.inventory.oncall
    begin = start or plane.clock.now()

    def read() -> list[dict[str, Any]]:
        with plane.store.session() as session:
            roster = service.get_roster(session, settings=settings)
        found = report.upcoming_shifts(settings, roster, schedules=list(settings.schedules),
                                       start=begin, end=begin + timedelta(weeks=weeks))
        return [report.shift_dict(s, settings) for s in found]

    return await run_in_threadpool(read)


@router.get("/oncall/escalation")
async def escalation_plan(
    request: Request,
    severity: str = Query("P0", pattern="^P[0-3]$"),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    """The steps `severity` escalates through and whom each would reach if it fired now."""
    from opsplane.oncall import report, service

    plane = request.app.state.plane
    settings: OncallSettings = plane.inventory.oncall

    def read() -> dict[str, Any]:
        with plane.store.session() as session:
            roster = service.get_roster(session, settings=settings)
        return report.escalation_report(settings, roster, severity=severity,
                                        triggered_at=plane.clock.now())

    return await run_in_threadpool(read)


@router.post("/oncall/overrides", status_code=201)
async def create_override(
    request: Request, body: OverrideRequest, principal: Principal = Depends(require(Role.RESPONDER))
) -> dict[str, Any]:
    """Put someone else on call for a while (event oncall.override)."""
    from opsplane.oncall import service

    plane = request.app.state.plane

    def write() -> dict[str, Any]:
        with plane.store.session() as session:
            made = service.record_override(
                session, settings=plane.inventory.oncall, schedule=body.schedule, layer=body.layer,
                person=body.person, start=body.start, end=body.end, actor=principal.actor,
                clock=plane.clock)
        return {"schedule": made.schedule, "layer": made.layer, "person": made.person,
                "start": made.start.isoformat(), "end": made.end.isoformat()}

    return await _refusing_mistakes(write)


@router.post("/oncall/handoffs", status_code=201)
async def create_handoff(
    request: Request, body: HandoffRequest, principal: Principal = Depends(require(Role.RESPONDER))
) -> dict[str, Any]:
    """Leave a handoff note for the next shift (event oncall.handoff)."""
    from opsplane.oncall import service

    plane = request.app.state.plane

    def write() -> dict[str, Any]:
        with plane.store.session() as session:
            return service.record_handoff(session, settings=plane.inventory.oncall, schedule=body.schedule,
                                          note=body.note, actor=principal.actor,
                                          clock=plane.clock).as_dict()

    return await _refusing_mistakes(write)


async def _refusing_mistakes(write: Any) -> dict[str, Any]:
    """Run `write` off the event loop; a usage mistake is a 422 with its message."""
    try:
        result: dict[str, Any] = await run_in_threadpool(write)
    except UsageError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return result
