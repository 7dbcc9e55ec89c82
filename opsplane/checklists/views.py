"""Checklist routes: viewers read the lists and their runs; a responder runs one now, and gets
its report back once every item has been looked at."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from opsplane.api.errors import declare
from opsplane.api.store import in_session
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["checklists"])
INTEGER_MAX = 2**31 - 1
READ_REFUSALS = declare(404, meaning={404: "No such checklist run."})
RUN_REFUSALS = declare(404, meaning={404: "No such checklist."})


def _catalog(request: Request) -> dict[str, Any]:
    from opsplane.checklists.loader import catalog

    return catalog(request.app.state.plane.inventory, request.app.state.inventory_dir)


@router.get("/checklists")
async def list_checklists(request: Request,
                          _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """The checklists: name, title, items and when `serve` runs each (cron and time zone)."""
    inventory = request.app.state.plane.inventory
    planned = inventory.checklists.planned() if inventory.checklists is not None else {}
    return [{"name": name, "title": c.runbook.title, "items": [s.id for s in c.runbook.steps],
             "cron": planned.get(name, (None, None))[0], "timezone": planned.get(name, (None, None))[1]}
            for name, c in _catalog(request).items()]


@router.get("/checklists/runs")
async def list_runs(request: Request, checklist: str | None = Query(None, description="Only this one."),
                    limit: int = Query(30, ge=1, le=1000),
                    _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """Checklist runs, newest first, with the count of items ok, warned and failed."""
    from opsplane.checklists import service

    return await in_session(request, lambda session: [
        service.as_dict(r) for r in service.history(session, checklist=checklist, limit=limit)], {})


@router.get("/checklists/runs/{run_id}", responses=READ_REFUSALS)
async def show_run(request: Request, run_id: int = Path(ge=1, le=INTEGER_MAX),
                   _: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """One checklist run with each item's outcome and what it found."""
    from opsplane.checklists import flows
    from opsplane.checklists.service import NoSuchChecklistRun

    try:
        return await run_in_threadpool(flows.report, request.app.state.plane.store, run_id)
    except NoSuchChecklistRun as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/checklists/{name}/runs", status_code=201, responses=RUN_REFUSALS)
async def run_checklist(request: Request, name: str,
                        principal: Principal = Depends(require(Role.RESPONDER))) -> dict[str, Any]:
    """Run the checklist now (every item a safe look) and answer with its report."""
    from opsplane.checklists import flows
    from opsplane.checklists.worker import ServePlatform

    found = _catalog(request)
    if name not in found:
        raise HTTPException(404, f"no checklist {name!r}; the checklists: {', '.join(found)}")
    plane = request.app.state.plane
    platform = ServePlatform(plane.inventory, base_dir=request.app.state.inventory_dir, store=plane.store,
                             clock=plane.clock, environ=None, source=lambda: plane.scraper.locked_source())

    def work() -> dict[str, Any]:
        run_id = flows.run(plane.store, platform, found[name], clock=plane.clock, trigger="api",
                           requested_by=principal.actor)
        return flows.report(plane.store, run_id)

    return await run_in_threadpool(work)
