"""Runtime routes: the instances the runtime runs, and restarting or scaling a service.

Reading needs a viewer; changing needs an operator, as deploying does. Changes go through
the same driver as `opsplane restart` and `opsplane scale`, so the events they leave name the
token that asked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from opsplane.api.errors import declare
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role
from opsplane.errors import OpsplaneError, UsageError

if TYPE_CHECKING:
    from opsplane.drivers.runtime import RuntimeDriver

router = APIRouter(tags=["runtime"])
# What a change can answer besides its result.
CHANGE_REFUSALS = declare(404, 409, 502, meaning={
    404: "The service has no run section in the inventory.",
    409: "The runtime does not run (`opsplane up` starts it)."})


def _driver(request: Request, principal: Principal) -> RuntimeDriver:
    from opsplane.drivers.runtime import open_runtime

    plane = request.app.state.plane
    return open_runtime(plane.inventory, base_dir=request.app.state.inventory_dir,
                        actor=principal.actor)


def _instances(driver: RuntimeDriver, service: str | None = None) -> list[dict[str, Any]]:
    return [s.as_dict() for s in driver.status() if service is None or s.base_service == service]


def _runnable(request: Request, service: str) -> None:
    from opsplane.runtime.selection import require as require_runnable

    try:
        require_runnable(request.app.state.plane.inventory, service)
    except UsageError as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/instances")
async def instances(request: Request, principal: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """Every instance the runtime runs, tracks included: service, instance, version, pid, port,
    state, uptime, restarts, memory and CPU, as `opsplane ps --json` prints them."""
    from opsplane.drivers.runtime import RuntimeNotRunning

    driver = _driver(request, principal)
    try:
        return {"running": True, "instances": await run_in_threadpool(_instances, driver)}
    except RuntimeNotRunning as exc:
        return {"running": False, "reason": str(exc), "instances": []}


@router.post("/services/{service}/restart", responses=CHANGE_REFUSALS)
async def restart(service: str, request: Request,
                  principal: Principal = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Restart each instance of `service` in turn, as `opsplane restart` does; its instances
    afterwards."""
    _runnable(request, service)
    driver = _driver(request, principal)
    return {"service": service, "instances": await _change(driver, service, driver.restart, service)}


@router.post("/services/{service}/scale", responses=CHANGE_REFUSALS)
async def scale(service: str, request: Request,
                instances: int = Body(..., embed=True, ge=1, le=100,
                                      description="How many instances to run."),
                principal: Principal = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Run exactly `instances` instances of `service`, as `opsplane scale` does."""
    _runnable(request, service)
    driver = _driver(request, principal)
    return {"service": service,
            "instances": await _change(driver, service, driver.scale, service, instances)}


async def _change(driver: RuntimeDriver, service: str, action: Any, *args: Any) -> list[dict[str, Any]]:
    from opsplane.drivers.runtime import RuntimeNotRunning

    try:
        await run_in_threadpool(action, *args)
        return await run_in_threadpool(_instances, driver, service)
    except RuntimeNotRunning as exc:
        raise HTTPException(409, str(exc)) from None
    except OpsplaneError as exc:
        raise HTTPException(502, str(exc)) from None
