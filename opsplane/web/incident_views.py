"""Dashboard routes for incidents: the list, one incident, its post-mortem draft, and the
responder's two actions from the incident page (acknowledge, post a status update).

Reading declares `Depends(viewer)` like every dashboard page. The actions declare the
`responder` role, as the API's ack and update routes do, call the same service functions with
the signed-in token's name as actor, and refuse forms posted from another site.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from opsplane.auth.service import Principal, Role
from opsplane.errors import UsageError
from opsplane.incidents.models import UPDATE_STATUSES, Status, parse_next_update, parse_ref
from opsplane.web.session import SessionGuard, same_origin, viewer
from opsplane.web.views import page, read_form

if TYPE_CHECKING:  # the incident domain is imported by the first incident page shown
    from sqlalchemy.orm import Session

    from opsplane.web import incident_pages

router = APIRouter(tags=["dashboard"])
responder = SessionGuard(Role.RESPONDER)


@router.get("/ui/incidents", include_in_schema=False)
async def incident_list(
    request: Request, show: str = Query("all"), _: Principal = Depends(viewer),
) -> Response:
    """Open incidents first, then recent resolved ones; `show=open` keeps only the open."""
    from opsplane.web import incident_pages

    plane = request.app.state.plane
    show = show if show in incident_pages.FILTERS else "all"

    def read() -> list[incident_pages.IncidentListRow]:
        with plane.store.session() as session:
            return incident_pages.incident_list(session, now=plane.clock.now(),
                                                open_only=show == "open")

    rows = await run_in_threadpool(read)
    return page(request, "incidents.html", incidents=rows, show=show, filters=incident_pages.FILTERS)


@router.get("/ui/incidents/{incident_id}", include_in_schema=False)
async def incident_page(request: Request, incident_id: str,
                        principal: Principal = Depends(viewer)) -> Response:
    return await _show(request, incident_id, principal)


@router.post("/ui/incidents/{incident_id}/ack", include_in_schema=False)
async def acknowledge(request: Request, incident_id: str,
                      principal: Principal = Depends(responder)) -> Response:
    """Acknowledge from the page; the acknowledger commands the incident."""
    from opsplane.incidents import service

    plane = request.app.state.plane

    def change(session: Session, number: int) -> None:
        service.acknowledge(session, incident_id=number, actor=principal.actor, now=plane.clock.now())

    return await _act(request, incident_id, principal, change)


@router.post("/ui/incidents/{incident_id}/updates", include_in_schema=False)
async def post_update(request: Request, incident_id: str,
                      principal: Principal = Depends(responder)) -> Response:
    """A status update from the page's form, on the manual's template."""
    from opsplane.incidents import service

    plane = request.app.state.plane
    form = await read_form(request) if same_origin(request) else {}
    now = plane.clock.now()

    def change(session: Session, number: int) -> None:
        wanted = form.get("status", "")
        if wanted not in {s.value for s in UPDATE_STATUSES}:
            raise UsageError(f"status: one of {', '.join(s.value for s in UPDATE_STATUSES)}")
        promised = form.get("next_update", "").strip()
        try:
            next_update_at = parse_next_update(promised, now) if promised else None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        service.post_update(session, incident_id=number, status=Status(wanted),
                            summary=form.get("summary", ""), actions=form.get("actions", ""),
                            next_update_at=next_update_at, public=form.get("public") == "on",
                            actor=principal.actor, now=now, settings=plane.inventory.incidents)

    return await _act(request, incident_id, principal, change)


async def _show(request: Request, incident_id: str, principal: Principal, *,
                error: str | None = None, status_code: int = 200) -> Response:
    """The incident page, with a refused action's reason when there is one."""
    from opsplane.web import incident_pages

    plane = request.app.state.plane
    number = parse_ref(incident_id)

    def read() -> incident_pages.IncidentPage | None:
        if number is None:
            return None
        with plane.store.session() as session:
            return incident_pages.incident_page(session, incident_id=number,
                                                settings=plane.inventory.incidents,
                                                now=plane.clock.now())

    found = await run_in_threadpool(read)
    if found is None:
        return _missing(request, incident_id)
    return page(request, "incident.html", status_code=status_code, detail=found, error=error,
                can_respond=principal.role.allows(Role.RESPONDER),
                update_statuses=[s.value for s in UPDATE_STATUSES])


async def _act(request: Request, incident_id: str, principal: Principal,
               change: Callable[[Session, int], None]) -> Response:
    """Run a responder's change in one transaction, then back to the incident page: a redirect
    when it is done, the page with the reason (409 or 422) when the incident service refused."""
    from opsplane.incidents import service
    from opsplane.incidents.lifecycle import TransitionRefused

    if not same_origin(request):
        return await _show(request, incident_id, principal, status_code=403,
                           error="This form was sent from another site; nothing was changed.")
    number = parse_ref(incident_id)
    if number is None:
        return _missing(request, incident_id)
    store = request.app.state.plane.store

    def run() -> None:
        with store.session() as session:
            change(session, number)

    try:
        await run_in_threadpool(run)
    except service.NoSuchIncident:
        return _missing(request, incident_id)
    except TransitionRefused as exc:
        return await _show(request, incident_id, principal, error=str(exc), status_code=409)
    except UsageError as exc:
        return await _show(request, incident_id, principal, error=str(exc), status_code=422)
    return RedirectResponse(f"/ui/incidents/{number}", status_code=303)


@router.get("/ui/incidents/{incident_id}/postmortem", include_in_schema=False)
async def postmortem_page(request: Request, incident_id: str,
                          _: Principal = Depends(viewer)) -> Response:
    """The post-mortem draft as preformatted Markdown, to copy into the write-up."""
    from opsplane.web import incident_pages

    plane = request.app.state.plane
    number = parse_ref(incident_id)

    def read() -> str | None:
        if number is None:
            return None
        with plane.store.session() as session:
            return incident_pages.postmortem_draft(session, incident_id=number,
                                                   settings=plane.inventory.incidents,
                                                   now=plane.clock.now())

    draft = await run_in_threadpool(read)
    if draft is None or number is None:
        return _missing(request, incident_id)
    return page(request, "postmortem.html", draft=draft, ref=f"INC-{number}", number=number)


def _missing(request: Request, incident_id: str) -> Response:
    return page(request, "incident_missing.html", status_code=404, name=incident_id)
