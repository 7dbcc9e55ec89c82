"""Dashboard routes for incidents: the list, one incident, and its post-mortem draft.

Like every dashboard page, each declares `Depends(viewer)`: reading incidents needs only the
viewer role. Changing them stays with the API's responder routes and the CLI.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from opsplane.auth.service import Principal
from opsplane.incidents.models import parse_ref
from opsplane.web import incident_pages
from opsplane.web.render import page
from opsplane.web.session import viewer

router = APIRouter(tags=["dashboard"])


@router.get("/ui/incidents", include_in_schema=False)
async def incident_list(
    request: Request, show: str = Query("all"), _: Principal = Depends(viewer),
) -> Response:
    """Open incidents first, then recent resolved ones; `show=open` keeps only the open."""
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
                        _: Principal = Depends(viewer)) -> Response:
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
    return page(request, "incident.html", detail=found)


@router.get("/ui/incidents/{incident_id}/postmortem", include_in_schema=False)
async def postmortem_page(request: Request, incident_id: str,
                          _: Principal = Depends(viewer)) -> Response:
    """The post-mortem draft as preformatted Markdown, to copy into the write-up."""
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
