"""Incident routes: viewers read incidents with their timelines; responders acknowledge,
post status updates and resolve, recorded with the token's name as actor."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from opsplane.api.errors import declare
from opsplane.api.store import in_session
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role
from opsplane.errors import UsageError
from opsplane.incidents.models import Status, parse_ref

if TYPE_CHECKING:
    from opsplane.incidents.models import IncidentsSettings

router = APIRouter(tags=["incidents"])
T = TypeVar("T")
# How a path names an incident. Anything else, a number past a store's 64-bit ids included,
# names no incident: 404, as for an incident that does not exist (`parse_ref`).
IncidentId = Path(description="12 or INC-12.", examples=["INC-1"])
READ_REFUSALS = declare(404, meaning={404: "No such incident."})
CHANGE_REFUSALS = declare(404, 409, meaning={
    404: "No such incident.", 409: "The incident's state does not allow it (already resolved, ...)."})


class AckRequest(BaseModel):
    commander: str | None = Field(None, description="Who commands the incident [default: you].")


class UpdateRequest(BaseModel):
    # The status update template's words: the statuses an update can set.
    status: Literal["investigating", "identified", "monitoring", "resolved"]
    summary: str = Field(min_length=1, description="The issue and its impact on users.")
    actions: str = Field("", description="What is being done to resolve it.")
    next_update: str | None = Field(
        None, description="When the next update comes: a delay (30m) or an ISO 8601 time "
        "[default: the severity's cadence].")
    public: bool = Field(False, description="Show this update on the public status page.")
    root_cause: str | None = None
    public_title: str | None = Field(
        None, max_length=300, description="What the public status page calls the incident from "
        "now on [default: words made from its severity].")


class ResolveRequest(BaseModel):
    summary: str = Field("Resolved.", min_length=1)
    public: bool = False
    root_cause: str | None = None


@router.get("/incidents")
async def list_incidents(
    request: Request,
    open_only: bool = Query(False, alias="open", description="Only incidents not yet resolved."),
    service_name: str | None = Query(None, alias="service"),
    limit: int = Query(100, ge=1, le=1000),
    _: Principal = Depends(require(Role.VIEWER)),
) -> list[dict[str, Any]]:
    """Incidents newest first."""
    from opsplane.incidents import service

    plane = request.app.state.plane
    settings: IncidentsSettings = plane.inventory.incidents

    def read() -> list[dict[str, Any]]:
        with plane.store.session() as session:
            rows = service.get_all(session, open_only=open_only, service=service_name, limit=limit)
            return [service.incident_dict(row, settings) for row in rows]

    return await run_in_threadpool(read)


@router.get("/incidents/{incident_id}", responses=READ_REFUSALS)
async def show_incident(
    request: Request, incident_id: str = IncidentId, _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    """One incident with its status updates, alerts, action items and timeline."""
    from opsplane.incidents import service

    plane = request.app.state.plane
    number = _number(incident_id)

    def read(session: Any) -> dict[str, Any]:
        return service.detail(session, incident_id=number, settings=plane.inventory.incidents,
                              now=plane.clock.now())

    return await _run(request, read)


@router.post("/incidents/{incident_id}/ack", responses=CHANGE_REFUSALS)
async def acknowledge(
    request: Request, incident_id: str = IncidentId, body: AckRequest | None = None,
    principal: Principal = Depends(require(Role.RESPONDER)),
) -> dict[str, Any]:
    """Acknowledge the incident; the acknowledger commands it unless `commander` says otherwise."""
    from opsplane.incidents import service

    plane = request.app.state.plane
    number = _number(incident_id)

    def change(session: Any) -> dict[str, Any]:
        row = service.acknowledge(session, incident_id=number, actor=principal.actor,
                                  now=plane.clock.now(), commander=body.commander if body else None)
        return service.incident_dict(row, plane.inventory.incidents)

    return await _run(request, change)


@router.post("/incidents/{incident_id}/updates", status_code=201, responses=CHANGE_REFUSALS)
async def post_update(
    request: Request, body: UpdateRequest, incident_id: str = IncidentId,
    principal: Principal = Depends(require(Role.RESPONDER)),
) -> dict[str, Any]:
    """A status update on the manual's template (status, summary, current actions, next update)."""
    from opsplane.incidents import service
    from opsplane.incidents.models import parse_next_update

    plane = request.app.state.plane
    number = _number(incident_id)
    now = plane.clock.now()
    try:
        promised = parse_next_update(body.next_update, now) if body.next_update else None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None

    def change(session: Any) -> dict[str, Any]:
        update = service.post_update(
            session, incident_id=number, status=Status(body.status), summary=body.summary,
            actions=body.actions, next_update_at=promised, public=body.public,
            root_cause=body.root_cause, actor=principal.actor, now=now,
            settings=plane.inventory.incidents, public_title=body.public_title)
        return service.update_dict(update)

    return await _run(request, change)


@router.post("/incidents/{incident_id}/resolve", responses=CHANGE_REFUSALS)
async def resolve(
    request: Request, incident_id: str = IncidentId, body: ResolveRequest | None = None,
    principal: Principal = Depends(require(Role.RESPONDER)),
) -> dict[str, Any]:
    """Resolve the incident with a final status update."""
    from opsplane.incidents import service

    plane = request.app.state.plane
    number = _number(incident_id)
    given = body or ResolveRequest()

    def change(session: Any) -> dict[str, Any]:
        service.resolve(session, incident_id=number, summary=given.summary, public=given.public,
                        root_cause=given.root_cause, actor=principal.actor, now=plane.clock.now(),
                        settings=plane.inventory.incidents)
        return service.incident_dict(service.get_or_raise(session, incident_id=number),
                                     plane.inventory.incidents)

    return await _run(request, change)


def _number(text: str) -> int:
    number = parse_ref(text)
    if number is None:
        raise HTTPException(404, f"no incident {text!r}; incidents are named 12 or INC-12")
    return number


async def _run(request: Request, work: Callable[[Any], T]) -> T:
    """`work` in a session off the event loop, the domain's refusals answered as HTTP."""
    from opsplane.incidents import service
    from opsplane.incidents.lifecycle import TransitionRefused

    return await in_session(request, work, {service.NoSuchIncident: 404, TransitionRefused: 409,
                                            UsageError: 422})
