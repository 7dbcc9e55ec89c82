"""Report routes: viewers read the jobs and their stored reports; an operator runs a job now."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from opsplane.api.errors import declare
from opsplane.api.store import in_session
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["reports"])
INTEGER_MAX = 2**31 - 1
READ_REFUSALS = declare(404, meaning={404: "No such report."})
RUN_REFUSALS = declare(404, meaning={404: "No such job."})


@router.get("/reports/jobs")
async def list_jobs(request: Request, _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """The jobs, what each looks at, and when `serve` runs it (cron and time zone)."""
    from opsplane.reports.jobs import JOBS, planned

    settings = request.app.state.plane.inventory.jobs
    plan = planned(settings) if settings is not None else {}
    return [{"job": j.name, "about": j.about, "cron": plan.get(j.name, (None, None))[0],
             "timezone": plan.get(j.name, (None, None))[1]} for j in JOBS]


@router.get("/reports")
async def list_reports(request: Request, job: str | None = Query(None, description="Only this job's."),
                       limit: int = Query(30, ge=1, le=1000),
                       _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """Stored reports, newest first: job, outcome, summary and the count of findings."""
    from opsplane.reports import service

    return await in_session(request, lambda session: [
        service.as_dict(r) for r in service.history(session, job=job, limit=limit)], {})


@router.get("/reports/{report_id}", responses=READ_REFUSALS)
async def show_report(request: Request, report_id: int = Path(ge=1, le=INTEGER_MAX),
                      _: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """One report with its findings, its body and its Markdown."""
    from opsplane.reports import service

    return await in_session(request, lambda session: service.as_dict(service.get(session, report_id),
                                                                      full=True),
                            {service.NoSuchReport: 404})


@router.post("/reports/jobs/{job}/run", responses=RUN_REFUSALS)
async def run_job(request: Request, job: str = Path(max_length=100),
                  who: Principal = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Run a job now and return its stored report (null when it has nothing to look at)."""
    from opsplane.errors import UsageError
    from opsplane.reports import jobs, service

    plane = request.app.state.plane
    try:
        found = jobs.get(job)
    except UsageError as exc:
        raise HTTPException(404, str(exc)) from None

    def source() -> Any:
        samples = plane.context.samples
        return samples.locked_source() if samples is not None else None

    env = jobs.JobEnv(plane.inventory, request.app.state.inventory_dir, plane.store, plane.clock,
                      environ=dict(os.environ), samples=source, actor=who.name)
    row = await run_in_threadpool(jobs.run_and_save, found, env, trigger="api", requested_by=who.name)
    return service.as_dict(row, full=True) if row is not None else {}
