"""The public status page: `GET /status` (HTML) and `GET /status.json`, without login.

These routes, `/health` and the sign-in form are the only ones that answer strangers. They
show what `opsplane.web.status` builds and nothing else; the pages take no parameters.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from opsplane.timefmt import span_words

if TYPE_CHECKING:  # imported by the first request for the page
    from markupsafe import Markup

    from opsplane.web import status
    from opsplane.web.status import PublicComponent
    from opsplane.web.uptime import DayUptime

router = APIRouter(tags=["status"])
RELOAD_SECONDS = 60
BAR_WIDTH = 3
BAR_GAP = 1
BAR_HEIGHT = 28
MIN_BAR = 3  # a day with a few minutes of data still shows its colour


@router.get("/status", include_in_schema=False)
async def status_page(request: Request) -> Response:
    from opsplane.web import status
    from opsplane.web.render import environment, security_headers

    found = await run_in_threadpool(status.report, request.app.state.plane, _cache(request))
    nonce = secrets.token_urlsafe(16)
    html = environment().get_template("status.html").render(
        report=found, bars=uptime_bars, percent=percent, uptime_text=uptime_text,
        reload_seconds=RELOAD_SECONDS)
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


def uptime_text(component: PublicComponent, now: datetime) -> str:
    """The uptime with the time it was measured over: '99.20 % uptime over the last 3 h 12 min',
    '99.95 % uptime over 12 days 4 h of data since 2026-02-01', or 'no data yet'."""
    uptime, seconds, since = component.uptime, component.measured.observed, component.measured.since
    if uptime is None or since is None:
        return "no data yet"
    days = len(component.days)
    if seconds >= days * 86400 - 60:
        return f"{percent(uptime)} uptime over the last {days} days"
    if (now - since).total_seconds() - seconds <= max(60.0, seconds * 0.01):
        return f"{percent(uptime)} uptime over the last {span_words(seconds)}"
    return f"{percent(uptime)} uptime over {span_words(seconds)} of data since {since:%Y-%m-%d}"


def day_text(day: DayUptime, now: datetime) -> str:
    """A bar's tooltip: the date, its uptime and how much of the day that is measured over."""
    if day.fraction is None:
        return f"{day.day.isoformat()}: no data"
    if day.coverage(now) >= 0.999:
        whole = "the whole day so far" if day.day == now.astimezone(UTC).date() else "the whole day"
        return f"{day.day.isoformat()}: {percent(day.fraction)} over {whole}"
    return f"{day.day.isoformat()}: {percent(day.fraction)}, only {span_words(day.observed)} of data"


def uptime_bars(name: str, days: Sequence[DayUptime], now: datetime) -> Markup:
    """One SVG bar per day, oldest on the left, as tall as the share of the day that was
    observed (grey above it), coloured by uptime; each says its date, uptime and measured time
    on hover and to screen readers."""
    from markupsafe import Markup, escape

    width = len(days) * (BAR_WIDTH + BAR_GAP)
    parts = []
    for n, day in enumerate(days):
        x = n * (BAR_WIDTH + BAR_GAP)
        height = 0 if day.fraction is None else max(MIN_BAR, round(BAR_HEIGHT * day.coverage(now)))
        rects = []
        if height < BAR_HEIGHT:  # the part of the day nobody watched
            rects.append(f'<rect class="up-none" x="{x}" y="0" width="{BAR_WIDTH}" '
                         f'height="{BAR_HEIGHT}" rx="1"/>')
        if height:
            rects.append(f'<rect class="{bar_class(day)}" x="{x}" y="{BAR_HEIGHT - height}" '
                         f'width="{BAR_WIDTH}" height="{height}" rx="1"/>')
        parts.append(f'<g class="day" data-date="{day.day.isoformat()}">'
                     f'<title>{escape(day_text(day, now))}</title>{"".join(rects)}</g>')
    label = escape(f"{name}: uptime per day over the last {len(days)} days")
    return Markup(f'<svg class="uptime" role="img" aria-label="{label}" width="{width}" '
                  f'height="{BAR_HEIGHT}" viewBox="0 0 {width} {BAR_HEIGHT}">{"".join(parts)}</svg>')
