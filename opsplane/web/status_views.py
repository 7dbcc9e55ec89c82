"""The public status page: `GET /status` (HTML) and `GET /status.json`, without login.

These routes, `/health` and the sign-in form are the only ones that answer strangers. They
show what `opsplane.web.status` builds and nothing else; the pages take no parameters.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:  # imported by the first request for the page
    from markupsafe import Markup

    from opsplane.web import status
    from opsplane.web.uptime import DayUptime

router = APIRouter(tags=["status"])
RELOAD_SECONDS = 60
BAR_WIDTH = 3
BAR_GAP = 1
BAR_HEIGHT = 28


@router.get("/status", include_in_schema=False)
async def status_page(request: Request) -> Response:
    from opsplane.web import status
    from opsplane.web.render import environment, security_headers

    found = await run_in_threadpool(status.report, request.app.state.plane, _cache(request))
    nonce = secrets.token_urlsafe(16)
    html = environment().get_template("status.html").render(
        report=found, bars=uptime_bars, percent=percent, reload_seconds=RELOAD_SECONDS)
    return Response(html, media_type="text/html; charset=utf-8", headers=security_headers(nonce))


@router.get("/status.json", response_class=JSONResponse, responses={200: {
    "description": "The public status: each public component's state and uptime, open public "
                   "incidents and maintenance (docs/status-page.md).",
    "content": {"application/json": {"schema": {"type": "object"}}}}})
async def status_json(request: Request) -> JSONResponse:
    """The public status page as JSON, without a token (and to any origin)."""
    from opsplane.web import status

    found = await run_in_threadpool(status.report, request.app.state.plane, _cache(request))
    return JSONResponse(found.as_dict(), headers={"Cache-Control": "no-store",
                                                  "X-Content-Type-Options": "nosniff",
                                                  "Access-Control-Allow-Origin": "*"})


@router.get("/status/static/status.css", include_in_schema=False)
def status_stylesheet() -> Response:
    return Response((Path(__file__).parent / "static" / "status.css").read_bytes(), media_type="text/css",
                    headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})


def _cache(request: Request) -> status.UptimeCache:
    """The app's uptime cache, made on first use."""
    from opsplane.web import status

    cache = getattr(request.app.state, "status_uptime", None)
    if cache is None:
        cache = request.app.state.status_uptime = status.UptimeCache()
    return cache


def percent(value: float | None) -> str:
    """'99.95 %', '100 %', or 'no data'."""
    if value is None:
        return "no data"
    if value >= 1.0:
        return "100 %"
    return f"{min(value * 100, 99.99):.2f} %"


def bar_class(day: DayUptime) -> str:
    fraction = day.fraction
    if fraction is None:
        return "up-none"
    if fraction >= 1.0:
        return "up-full"
    if fraction >= 0.99:
        return "up-high"
    return "up-mid" if fraction >= 0.95 else "up-low"


def uptime_bars(name: str, days: Sequence[DayUptime]) -> Markup:
    """One SVG bar per day, oldest on the left; each says its date and uptime on hover and to
    screen readers."""
    from markupsafe import Markup, escape

    width = len(days) * (BAR_WIDTH + BAR_GAP)
    rects = "".join(
        f'<rect class="{bar_class(day)}" x="{n * (BAR_WIDTH + BAR_GAP)}" y="0" width="{BAR_WIDTH}" '
        f'height="{BAR_HEIGHT}" rx="1"><title>{day.day.isoformat()}: {percent(day.fraction)}</title></rect>'
        for n, day in enumerate(days))
    label = escape(f"{name}: uptime per day over the last {len(days)} days")
    return Markup(f'<svg class="uptime" role="img" aria-label="{label}" width="{width}" '
                  f'height="{BAR_HEIGHT}" viewBox="0 0 {width} {BAR_HEIGHT}">{rects}</svg>')
