"""Dashboard routes for runbooks: the runbooks and recent runs, one run with each step's
attempts, and one runbook's steps. Each declares `Depends(viewer)` like every dashboard page;
nothing here changes anything (runs are started, answered and approved with `opsplane
runbook` or the API)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from opsplane.api.params import row_id
from opsplane.auth.service import Principal
from opsplane.web.session import viewer
from opsplane.web.views import page

if TYPE_CHECKING:  # the runbook domain is imported by the first runbook page shown
    from opsplane.web import runbook_pages

router = APIRouter(tags=["dashboard"])


@router.get("/ui/runbooks", include_in_schema=False)
async def runbook_list(request: Request, _: Principal = Depends(viewer)) -> Response:
    """The runbooks opsplane knows, and the most recent runs."""
    from opsplane.web import runbook_pages

    plane = request.app.state.plane

    def read() -> tuple[runbook_pages.Catalog, list[runbook_pages.RunLine]]:
        found = runbook_pages.runbook_catalog(plane.inventory, request.app.state.inventory_dir)
        with plane.store.session() as session:
            return found, runbook_pages.run_list(session, now=plane.clock.now())

    found, runs = await run_in_threadpool(read)
    return page(request, "runbooks.html", catalog=found, runs=runs)


@router.get("/ui/runbooks/runs/{run_id}", include_in_schema=False)
async def run_page(request: Request, run_id: str, _: Principal = Depends(viewer)) -> Response:
    """One run: its runbook, parameters, incident, people, state, and every attempt of its steps."""
    from opsplane.web import runbook_pages

    plane = request.app.state.plane
    number = row_id(run_id)

    def read() -> runbook_pages.RunPage | None:
        if number is None:
            return None
        with plane.store.session() as session:
            return runbook_pages.run_page(session, run_id=number, now=plane.clock.now())

    detail = await run_in_threadpool(read)
    if detail is None:
        return page(request, "runbook_missing.html", status_code=404, what="run", name=run_id)
    return page(request, "runbook_run.html", detail=detail, r=detail.run, live=detail.run.is_active)


@router.get("/ui/runbooks/{name}", include_in_schema=False)
async def runbook_page(request: Request, name: str, _: Principal = Depends(viewer)) -> Response:
    """One runbook: its parameters, its steps (what each does, whether it runs unattended), the
    command that runs it, and its recent runs."""
    from opsplane.web import runbook_pages

    plane = request.app.state.plane

    def read() -> tuple[runbook_pages.RunbookLine | None, list[runbook_pages.RunLine]]:
        found = runbook_pages.runbook_page(plane.inventory, request.app.state.inventory_dir, name)
        if found is None:
            return None, []
        with plane.store.session() as session:
            return found, runbook_pages.run_list(session, now=plane.clock.now(), runbook=name)

    found, runs = await run_in_threadpool(read)
    if found is None:
        return page(request, "runbook_missing.html", status_code=404, what="runbook", name=name)
    return page(request, "runbook.html", rb=found, runs=runs)
