"""Dashboard route for capacity: every recorded resource's use and forecast, and the KPIs.
Declares `Depends(viewer)` like every dashboard page; nothing here changes anything."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from opsplane.auth.service import Principal
from opsplane.web.session import viewer
from opsplane.web.views import page

router = APIRouter(tags=["dashboard"])


@router.get("/ui/capacity", include_in_schema=False)
async def capacity_page(request: Request, _: Principal = Depends(viewer)) -> Response:
    """Each resource's use with its forecast drawn to its trigger, the fit and why, the time
    to the trigger and the advice; the last KPI report."""
    from opsplane.capacity.models import CapacitySettings
    from opsplane.web import capacity_pages

    plane = request.app.state.plane
    settings = plane.inventory.capacity or CapacitySettings()

    def read() -> tuple[list[capacity_pages.ResourceView], dict[str, object] | None]:
        with plane.store.session() as session:
            return (capacity_pages.resource_views(session, settings, now=plane.clock.now()),
                    capacity_pages.last_kpis(session))

    views, kpis = await run_in_threadpool(read)
    return page(request, "capacity.html", views=views, kpis=kpis,
                configured=plane.inventory.capacity is not None)
