"""Deploy routes: viewers read deploys, their steps and verdicts; operators ask for a deploy,
promote, pause, resume, abort, approve and roll back. The deploy itself is carried out by
`serve`'s deploy worker, so every change route answers at once."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from opsplane.api.errors import declare
from opsplane.api.params import ROW_ID_MAX
from opsplane.api.store import in_session
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["deploys"])
T = TypeVar("T")
DeployId = Path(ge=1, le=ROW_ID_MAX, description="The deploy's number.")
READ_REFUSALS = declare(404, meaning={404: "No such deploy."})
CHANGE_REFUSALS = declare(404, 409, meaning={
    404: "No such deploy.", 409: "Refused: the deploy's state, a closed window, an unknown release, "
    "a deploy already running; the message says which."})


class DeployRequest(BaseModel):
    service: str = Field(description="The service to deploy.")
    version: str = Field(description="The release to deploy.")
    strategy: Literal["rolling", "blue-green", "canary"] | None = None
    auto_promote: bool | None = None
    initial_percent: float | None = Field(None, gt=0, le=100)
    override_reason: str | None = Field(None, min_length=1, max_length=500,
                                        description="Deploy outside the window or in a freeze, recorded.")
    environment: str | None = None
    dry_run: bool = Field(False, description="Answer the plan; change nothing.")


@router.get("/deploys")
async def list_deploys(
    request: Request, service_name: str | None = Query(None, alias="service"),
    limit: int = Query(50, ge=1, le=1000), _: Principal = Depends(require(Role.VIEWER)),
) -> list[dict[str, Any]]:
    """Deploys, newest first."""
    from opsplane.deploy import service

    return await _run(request, lambda session: [service.as_dict(row) for row in
                                                service.history(session, service_name, limit)])


@router.get("/deploys/{deploy_id}", responses=READ_REFUSALS)
async def show_deploy(request: Request, deploy_id: int = DeployId,
                      _: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """One deploy: its plan, the step it is at, the share on the new release and its verdicts."""
    from opsplane.deploy import service

    return await _run(request, lambda session: service.as_dict(service.get(session, deploy_id)))


@router.post("/deploys", status_code=201, responses=CHANGE_REFUSALS)
async def ask_for_deploy(request: Request, body: DeployRequest,
                         principal: Principal = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Ask for a deploy (or, with `dry_run`, its plan); `serve` carries it out."""
    from opsplane.deploy import service
    from opsplane.deploy.gates import GateContext, check_at_request
    from opsplane.deploy.request import Request as Asked
    from opsplane.deploy.request import check_proxy, own_instances, prepare
    from opsplane.health.targets import environment_name

    plane = request.app.state.plane
    runtime: Any = plane.context.runtime
    if runtime is None:
        raise HTTPException(409, "opsplane's runtime does not run this inventory's services: "
                                 "nothing to deploy")
    inventory = plane.inventory

    def work(session: Any) -> dict[str, Any]:
        counts = own_instances(runtime)
        now = plane.clock.now()
        asked = Asked(body.service, body.version, environment_name(inventory, body.environment),
                      body.strategy, body.auto_promote, body.initial_percent, body.override_reason)
        prepared = prepare(inventory, asked, current=dict(runtime.releases()), instances=counts, now=now,
                           cwd=str(getattr(runtime, "base_dir", ".")))
        base_dir = pathlib.Path(getattr(runtime, "base_dir", "."))
        check_proxy(inventory, body.service, runtime, base_dir=base_dir)
        if body.dry_run:
            return {"dry_run": True, **prepared.as_dict()}
        check_at_request(GateContext(inventory, session, body.service, now),
                         override=prepared.params.get("override"))
        row = service.create(session, service=body.service, environment=asked.environment,
                             strategy=prepared.strategy, from_version=prepared.from_version,
                             to_version=body.version, plan=prepared.steps, params=prepared.params,
                             approvals_needed=prepared.approvals_needed, actor=principal.actor, now=now)
        plane.wake_worker("deploy")
        return service.as_dict(row)

    return await _run(request, work)


@router.post("/deploys/{deploy_id}/{action}", responses=CHANGE_REFUSALS)
async def operate(request: Request, action: Literal["promote", "pause", "resume", "abort", "approve"],
                  deploy_id: int = DeployId,
                  principal: Principal = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Promote, pause, resume, abort or approve a deploy."""
    from opsplane.deploy import service

    plane = request.app.state.plane

    def work(session: Any) -> dict[str, Any]:
        row = service.get(session, deploy_id)
        message = service.operate(session, row, action, actor=principal.actor, now=plane.clock.now())
        return {"message": message, "deploy": service.as_dict(row)}

    answer = await _run(request, work)
    plane.wake_worker("deploy")
    return answer


@router.post("/services/{service_name}/rollback", responses=CHANGE_REFUSALS)
async def rollback(request: Request, service_name: str,
                   principal: Principal = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Back to the previous release of the service at once."""
    from opsplane.deploy import service

    plane = request.app.state.plane
    names = {name for _, name, _ in plane.inventory.components()}
    if service_name not in names:
        raise HTTPException(404, f"unknown service {service_name!r}")
    proxied = plane.inventory.component(service_name).proxy is not None

    def work(session: Any) -> dict[str, Any]:
        deploy_id, message = service.roll_back_service(session, service_name, actor=principal.actor,
                                                       now=plane.clock.now(), proxied=proxied)
        return {"message": message, "deploy": deploy_id}

    answer = await _run(request, work)
    plane.wake_worker("deploy")
    return answer


async def _run(request: Request, work: Callable[[Any], T]) -> T:
    """`work` in a session off the event loop; the domain's refusals become 404 and 409, a
    request naming what the inventory does not have (an environment) 422."""
    from opsplane.deploy.service import DeployRefused, NoSuchDeploy
    from opsplane.errors import UsageError

    return await in_session(request, work, {NoSuchDeploy: 404, DeployRefused: 409, UsageError: 422})
