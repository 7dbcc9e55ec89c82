"""Dashboard routes for deploys: the list, one deploy, and the operator's actions from its page
(promote, pause, resume, abort, approve).

Reading declares `Depends(viewer)` like every dashboard page. The actions declare the
`operator` role, as the API's `/api/v1/deploys/{id}/{action}` does, call the same
`deploy.service.operate` with the signed-in token's name as actor, wake the deploy worker,
and refuse forms posted from another site.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from opsplane.api.params import row_id
from opsplane.auth.service import Principal, Role
from opsplane.web.session import SessionGuard, same_origin, viewer
from opsplane.web.views import page

if TYPE_CHECKING:  # the deploy domain is imported by the first deploy page shown
    from opsplane.web import deploy_pages

router = APIRouter(tags=["dashboard"])
operator = SessionGuard(Role.OPERATOR)
ACTIONS = ("promote", "pause", "resume", "abort", "approve")


@router.get("/ui/deploys", include_in_schema=False)
async def deploy_list(
    request: Request, service: str | None = Query(None, description="Only this service's deploys."),
    _: Principal = Depends(viewer),
) -> Response:
    """Deploys that are not finished first, then the most recent finished ones."""
    from opsplane.web import deploy_pages

    plane = request.app.state.plane
    service = (service or "").strip() or None

    def read() -> list[deploy_pages.DeployListRow]:
        with plane.store.session() as session:
            return deploy_pages.deploy_list(session, now=plane.clock.now(), service_name=service)

    rows = await run_in_threadpool(read)
    names = [name for section, name, c in plane.inventory.components() if c.run is not None]
    return page(request, "deploys.html", deploys=rows, service=service, services=names)


@router.get("/ui/deploys/{deploy_id}", include_in_schema=False)
async def deploy_page(request: Request, deploy_id: str, principal: Principal = Depends(viewer)) -> Response:
    return await _show(request, deploy_id, principal)


@router.post("/ui/deploys/{deploy_id}/{action}", include_in_schema=False)
async def operate(request: Request, deploy_id: str, action: str,
                  principal: Principal = Depends(operator)) -> Response:
    """An operator's promote, pause, resume, abort or approve, then back to the deploy's page:
    a redirect when it is done, the page with the reason (409) when the deploy's state refuses it."""
    from opsplane.deploy import service

    if not same_origin(request):
        return await _show(request, deploy_id, principal, status_code=403,
                           error="This form was sent from another site; nothing was changed.")
    number = row_id(deploy_id)
    if number is None or action not in ACTIONS:
        return _missing(request, deploy_id)
    plane = request.app.state.plane

    def run() -> None:
        with plane.store.session() as session:
            row = service.get(session, number)
            service.operate(session, row, action, actor=principal.actor, now=plane.clock.now())

    try:
        await run_in_threadpool(run)
    except service.NoSuchDeploy:
        return _missing(request, deploy_id)
    except service.DeployRefused as exc:
        return await _show(request, deploy_id, principal, error=str(exc), status_code=409)
    plane.wake_worker("deploy")
    return RedirectResponse(f"/ui/deploys/{number}", status_code=303)


async def _show(request: Request, deploy_id: str, principal: Principal, *, error: str | None = None,
                status_code: int = 200) -> Response:
    """The deploy page, with a refused action's reason when there is one."""
    from opsplane.web import deploy_pages

    plane = request.app.state.plane
    number = row_id(deploy_id)

    def read() -> tuple[deploy_pages.DeployPage, tuple[object, ...], str | None] | None:
        if number is None:
            return None
        with plane.store.session() as session:
            found = deploy_pages.deploy_page(session, deploy_id=number, now=plane.clock.now(),
                                             settings=plane.inventory.deploy)
        if found is None:
            return None
        charts, note = deploy_pages.deploy_charts(plane, found.deploy)  # range queries: off the loop
        return found, charts, note

    shown = await run_in_threadpool(read)
    if shown is None:
        return _missing(request, deploy_id)
    detail, charts, note = shown
    return page(request, "deploy.html", status_code=status_code, detail=detail, events=detail.events,
                charts=charts, chart_note=note, error=error,
                can_operate=principal.role.allows(Role.OPERATOR))


def _missing(request: Request, deploy_id: str) -> Response:
    return page(request, "deploy_missing.html", status_code=404, name=deploy_id)
