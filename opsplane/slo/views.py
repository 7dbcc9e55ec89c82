"""SLO routes: viewers read where each SLO stands (SLI, budget left, burn rates by window, state
and reason) and the monthly review. While `serve`'s SLO worker runs, the status is the one its
last minute found (with why an SLI cannot be read, when that is so); else it is worked out from
the store, as `opsplane slo status` does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from opsplane.api.errors import declare
from opsplane.api.store import in_session
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["slos"])
T = TypeVar("T")
SloName = Path(min_length=1, max_length=63, description="The SLO's name in the inventory.")
READ_REFUSALS = declare(404, meaning={404: "No SLO of that name in the inventory."})
REPORT_REFUSALS = declare(404, 422, meaning={404: "No SLO of that name in the inventory.",
                                             422: "The month is not YYYY-MM."})


@router.get("/slos")
async def list_slos(request: Request, _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """Every SLO with its status now: SLI, objective, budget used and left, burn rates and
    events per window (5m to 3d), state (ok, warning, exhausted, unknown) and its reason."""
    return await _statuses(request, None)


@router.get("/slos/{name}", responses=READ_REFUSALS)
async def show_slo(request: Request, name: str = SloName,
                   _: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """One SLO's status, as in the list."""
    [found] = await _statuses(request, name)
    return found


@router.get("/slos/{name}/report", responses=REPORT_REFUSALS)
async def slo_report(request: Request, name: str = SloName,
                     month: str | None = Query(
                         None, pattern=r"^\d{4}-\d{2}$",
                         description="The month, YYYY-MM; by default the last whole one."),
                     _: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """The SLO's monthly review: objective and achieved, budget used, the worst days, and the
    incidents and deploys of its service that month."""
    from opsplane.errors import UsageError
    from opsplane.slo.report import last_month, month_report, parse_month

    slos = _chosen(request, name)
    try:
        year, number = parse_month(month or last_month(request.app.state.plane.clock.now()))
    except UsageError as exc:
        raise HTTPException(422, str(exc)) from None
    [review] = await _run(request, lambda session: month_report(session, slos, year=year, month=number))
    return {"month": f"{year:04d}-{number:02d}", **review.as_json()}


def _chosen(request: Request, name: str | None) -> dict[str, Any]:
    slos = dict(request.app.state.plane.inventory.slos)
    if name is None:
        return slos
    if name not in slos:
        raise HTTPException(404, f"no SLO named {name!r}; the SLOs: {', '.join(slos) or 'none'}")
    return {name: slos[name]}


async def _statuses(request: Request, name: str | None) -> list[dict[str, Any]]:
    from opsplane.slo import service

    plane = request.app.state.plane
    slos = _chosen(request, name)
    kept = plane.context.slos  # the SLO worker's statuses, when it runs
    if kept is not None and all(slo in kept.statuses for slo in slos):
        return [kept.statuses[slo].as_json() for slo in slos]
    now = plane.clock.now()
    return await _run(request, lambda session: [
        status.as_json() for status in service.statuses(session, slos, now=now)])


async def _run(request: Request, work: Callable[[Any], T]) -> T:
    return await in_session(request, work, {})
