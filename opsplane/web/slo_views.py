"""Dashboard routes for SLOs: every SLO with its budget and burn rates, and one SLO's budget
burn-down, SLI per day, burn alerts, deploy gate and monthly review. Both declare
`Depends(viewer)` like every dashboard page; nothing here changes anything."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from opsplane.auth.service import Principal
from opsplane.web.session import viewer
from opsplane.web.views import page

if TYPE_CHECKING:  # the SLO pages' code is imported by the first SLO page shown
    from opsplane.web import slo_pages

router = APIRouter(tags=["dashboard"])
BURN_WINDOWS = ("1h", "6h", "1d", "3d")


@router.get("/ui/slos", include_in_schema=False)
async def slo_list(request: Request, _: Principal = Depends(viewer)) -> Response:
    """Every SLO: service, objective, window, SLI, budget left, burn rates, state and reason."""
    from opsplane.web import slo_pages

    plane = request.app.state.plane

    def read() -> list[slo_pages.SloLine]:
        with plane.store.session() as session:
            return slo_pages.slo_lines(session, plane.inventory.slos, now=plane.clock.now(),
                                       kept=slo_pages.kept_statuses(plane))

    lines = await run_in_threadpool(read)
    counts = {state: sum(1 for line in lines if line.status.state == state)
              for state in ("exhausted", "warning", "unknown", "ok")}
    return page(request, "slos.html", lines=lines, counts=counts, windows=BURN_WINDOWS, pct=slo_pages.pct,
                state_classes=slo_pages.STATE_CLASSES)


@router.get("/ui/slos/{name}", include_in_schema=False)
async def slo_page(
    request: Request,
    name: str,
    month: str | None = Query(None, max_length=20, description="The month reviewed, YYYY-MM."),
    _: Principal = Depends(viewer),
) -> Response:
    """One SLO: its definition, budget burn-down, SLI per day, burn rates against the alerts'
    factors, the burn alerts now, the deploy gate and a month's review."""
    from opsplane.errors import UsageError
    from opsplane.slo.report import last_month, parse_month
    from opsplane.web import slo_pages

    plane = request.app.state.plane
    now = plane.clock.now()
    note = None
    try:
        chosen = parse_month(month or last_month(now))
    except UsageError as exc:
        note, chosen = str(exc), parse_month(last_month(now))

    def read() -> slo_pages.SloPage | None:
        with plane.store.session() as session:
            return slo_pages.slo_page(session, plane.inventory, name, now=now,
                                      kept=slo_pages.kept_statuses(plane), month=chosen)

    detail = await run_in_threadpool(read)
    if detail is None:
        return page(request, "slo_missing.html", status_code=404, name=name,
                    slos=list(plane.inventory.slos))
    before, after = slo_pages.month_links(chosen, now)
    return page(request, "slo.html", detail=detail, line=detail.line, s=detail.line.status,
                events=detail.events, pct=slo_pages.pct, month_note=note, month_before=before,
                month_after=after)
