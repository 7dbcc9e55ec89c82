"""The control plane's own routes: `/health` for load balancers and supervisors (with every
worker's health) and `/metrics` for Prometheus, without a token; and waking a worker now
(`POST /api/v1/workers/{name}/wake`, an operator's)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from opsplane.api.errors import declare
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

if TYPE_CHECKING:
    from opsplane.live import LiveState, WorkerHealth

router = APIRouter(tags=["control plane"])  # at the root, without a token
workers_router = APIRouter(tags=["control plane"])  # under /api/v1


class WorkerReport(BaseModel):
    """One worker's health."""

    name: str
    state: Literal["starting", "running", "stopped", "crashed", "ended"]
    singleton: bool = Field(description="Whether it may run on one replica only.")
    last_run: datetime | None = Field(None, description="When it last finished a round.")
    lag_seconds: float = Field(description="How far behind its schedule it is.")
    errors: int = Field(description="Errors it met and went on after (or crashed on).")
    last_error: str | None = None
    problem: str | None = Field(None, description="Why it makes the control plane degraded.")

    @classmethod
    def of(cls, health: WorkerHealth) -> WorkerReport:
        return cls(name=health.name, state=health.state.value, singleton=health.singleton,
                   last_run=health.last_run, lag_seconds=round(health.lag, 3), errors=health.errors,
                   last_error=health.last_error, problem=health.problem)


class OwnHealth(BaseModel):
    """`GET /health`."""

    status: Literal["ok", "starting", "degraded"]
    checks: int
    environment: str
    reason: str | None = Field(None, description="Why it is degraded: each worker's problem, such as "
                               "since when and why its alerting cycles fail.")
    workers: list[WorkerReport] = Field(default_factory=list)


@router.get("/health", response_model=OwnHealth,
            responses={503: {"model": OwnHealth, "description": "Starting, or degraded: a worker crashed, "
                                                                 "ended, is stuck or keeps failing (alerting "
                                                                 "cycles)."}})
def own_health(request: Request) -> JSONResponse:
    """Whether the control plane runs: for load balancers and supervisors, without a token.
    `degraded` (503) while a worker crashed, ended, fell far behind its schedule or keeps
    failing (alerting cycles), with the reason; every worker's own health under `workers`."""
    plane: LiveState = request.app.state.plane
    state, reason, reports = plane.own_health()
    body = OwnHealth(status=state, checks=len(plane.targets), environment=plane.env, reason=reason,
                     workers=[WorkerReport.of(report) for report in reports])
    return JSONResponse(body.model_dump(mode="json", exclude_none=True),
                        status_code=200 if state == "ok" else 503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus's text format."}})
def own_metrics(request: Request) -> Response:
    """The control plane's own metrics, for Prometheus, without a token."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    plane: LiveState = request.app.state.plane
    return Response(generate_latest(plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@workers_router.post("/workers/{name}/wake", status_code=202,
                     responses=declare(404, meaning={404: "No worker of that name runs (`GET /health` "
                                                          "lists them)."}))
async def wake_worker(name: str, request: Request,
                      principal: Principal = Depends(require(Role.OPERATOR))) -> dict[str, str]:
    """Wake a worker: it runs its next round now rather than at its scheduled time (a rule
    cycle, a paging cycle, a pass of the outbox's dispatcher). Recorded as `worker.woken`."""
    from opsplane.events import service as events

    plane: LiveState = request.app.state.plane
    if not plane.wake_worker(name):
        raise HTTPException(404, f"no worker {name!r}; GET /health lists them")

    def record() -> None:
        with plane.store.session() as session:
            events.record(session, kind="worker.woken", actor=principal.actor, target=name,
                          outcome="success", clock=plane.clock)

    await run_in_threadpool(record)
    return {"worker": name, "state": "woken"}
