"""Runbook routes: viewers read runbooks and runs; responders start a run, which the control
plane drives with nobody at it (safe steps run, the run waits at the first that needs a
person); an approval needs the role its step names and another person than the requester."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from opsplane.api.errors import declare
from opsplane.api.store import in_session
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["runbooks"])
T = TypeVar("T")
INTEGER_MAX = 2**31 - 1  # runs and incidents are numbered by 32-bit integer columns
RunId = Path(ge=1, le=INTEGER_MAX, description="The run's number.")
READ_REFUSALS = declare(404, meaning={404: "No such runbook or run."})
CHANGE_REFUSALS = declare(403, 404, 409, 422, meaning={
    403: "The token's role falls short of what the approval step needs.",
    404: "No such runbook or run.",
    409: "Refused: the run's state, the requester approving; the message says which.",
    422: "Parameters the runbook does not take, or naming what the inventory does not have."})


class RunRequest(BaseModel):
    parameters: dict[str, str] = Field(default_factory=dict, description="The runbook's parameters.")
    incident: int | None = Field(None, ge=1, le=INTEGER_MAX, description="The incident the run is for.")


class Approval(BaseModel):
    step: str = Field(description="The approval step the run waits at.")


def _catalog(request: Request) -> dict[str, Any]:
    from opsplane.runbooks.loader import catalog

    return catalog(request.app.state.plane.inventory, request.app.state.inventory_dir)


def _loaded(request: Request, name: str) -> Any:
    found = _catalog(request)
    if name not in found:
        raise HTTPException(404, f"no runbook {name!r}")
    return found[name]


@router.get("/runbooks")
async def list_runbooks(request: Request,
                        _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """The runbooks the control plane knows: name, title, what they are for, parameters."""
    return [{"name": r.name, "title": r.runbook.title, "steps": len(r.runbook.steps),
             "for": r.runbook.for_.model_dump(), "parameters": list(r.runbook.parameters)}
            for r in _catalog(request).values()]


@router.get("/runbooks/{name}", responses=READ_REFUSALS)
async def show_runbook(request: Request, name: str,
                       _: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """One runbook as its file says it, with defaults filled in."""
    return dict(_loaded(request, name).runbook.model_dump(mode="json", by_alias=True))


@router.post("/runbooks/{name}/runs", status_code=201, responses=CHANGE_REFUSALS)
async def start_run(request: Request, name: str, body: RunRequest,
                    principal: Principal = Depends(require(Role.RESPONDER))) -> dict[str, Any]:
    """Start a run with nobody at it (mode auto); the control plane drives it in the background."""
    from opsplane.runbooks import service
    from opsplane.runbooks.models import render, resolve_parameters

    plane = request.app.state.plane
    loaded = _loaded(request, name)
    values, problems = resolve_parameters(loaded.runbook, body.parameters)
    if problems:
        raise HTTPException(422, "; ".join(problems))
    runbook = render(loaded.runbook, values)

    def work(session: Any) -> dict[str, Any]:
        if body.incident is not None:
            from opsplane.incidents import service as incidents

            incidents.get_or_raise(session, incident_id=body.incident)
        run = service.create(session, runbook=runbook, parameters=values, incident_id=body.incident,
                             requested_by=principal.actor, mode="auto", now=plane.clock.now())
        return service.as_dict(run)

    answer = await _run(request, work)
    _drive_later(request, answer["id"], principal.actor)
    return answer


@router.get("/runbook-runs")
async def list_runs(request: Request, limit: int = Query(50, ge=1, le=1000),
                    _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """Runs, newest first."""
    from opsplane.runbooks import service

    return await _run(request, lambda session: [service.as_dict(r)
                                                for r in service.get_all(session, limit=limit)])


@router.get("/runbook-runs/{run_id}", responses=READ_REFUSALS)
async def run_status(request: Request, run_id: int = RunId,
                     _: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """A run with every attempt of its steps."""
    from opsplane.runbooks import service

    return await _run(request, lambda session: service.as_dict(service.get(session, run_id),
                                                               service.steps(session, run_id)))


@router.post("/runbook-runs/{run_id}/approve", responses=CHANGE_REFUSALS)
async def approve_step(request: Request, body: Approval, run_id: int = RunId,
                       principal: Principal = Depends(require(Role.RESPONDER))) -> dict[str, Any]:
    """Approve the step the run waits at: the step's role, and not the run's requester."""
    from opsplane.runbooks import service

    plane = request.app.state.plane

    def work(session: Any) -> dict[str, Any]:
        run = service.get(session, run_id)
        service.approve(session, run, step_id=body.step, actor=principal.actor, role=principal.role,
                        now=plane.clock.now())
        return service.as_dict(run)

    answer = await _run(request, work)
    if answer["mode"] == "auto":
        _drive_later(request, run_id, principal.actor)
    return answer


def _drive_later(request: Request, run_id: int, actor: str) -> None:
    """Drive the run on a thread of its own with nobody to ask; a run that outlives `serve` is
    taken up again by `opsplane runbook resume`."""
    from opsplane.runbooks.flows import LivePlatform
    from opsplane.runbooks.runner import Runner, RunTakenOver

    plane = request.app.state.plane
    platform = LivePlatform(plane.inventory, base_dir=request.app.state.inventory_dir, store=plane.store,
                            clock=plane.clock)

    def drive() -> None:
        import time

        runner = Runner(plane.store, platform, clock=plane.clock, actor=actor, person=None, sleep=time.sleep)
        try:
            runner.drive(run_id)
        except RunTakenOver:
            pass  # someone else drives it
        finally:
            runner.close()

    threading.Thread(target=drive, name=f"runbook-run-{run_id}", daemon=True).start()


async def _run(request: Request, work: Callable[[Any], T]) -> T:
    from opsplane.errors import UsageError
    from opsplane.incidents.service import NoSuchIncident
    from opsplane.runbooks.service import NoSuchRun, NotAllowed, RunRefused

    return await in_session(request, work, {NoSuchRun: 404, NoSuchIncident: 404, NotAllowed: 403,
                                            RunRefused: 409, UsageError: 422})
