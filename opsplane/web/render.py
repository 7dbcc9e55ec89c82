"""Turning a template and its values into an HTML response with the dashboard's headers.

Jinja2 is imported on the first page rendered, so a control plane nobody looks at does not
carry it. Autoescaping is on for every template: values are text unless a chart function
returned them as markup.
"""

from __future__ import annotations

import functools
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from opsplane.links import web_link
from opsplane.timefmt import span_words
from opsplane.units import Unit, format_value
from opsplane.web import pages
from opsplane.web.charts import state_class

if TYPE_CHECKING:
    import jinja2

HERE = Path(__file__).parent
REFRESH_SECONDS = 5
CHECKS_PER_REFRESH_STEP = 500  # a page over 500 more checks refreshes 5 s less often
MAX_REFRESH_SECONDS = 60


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        seconds=lambda value: format_value(value, Unit.SECONDS),
        rate=lambda value: format_value(value, Unit.PER_SECOND),
        span=lambda value: "-" if value is None else span_words(value),
        bytes=lambda value: format_value(value, Unit.BYTES),
        timestamp=timestamp,
        state_class=state_class,
        web_link=web_link,  # an http(s) address, or None: anything else is shown as text
    )
    return env


def timestamp(value: datetime | float | None) -> str:
    """'2026-01-06 10:00:05 UTC'; a number is read as seconds since the epoch."""
    if value is None:
        return "-"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def page(request: Request, template: str, *, status_code: int = 200, **values: Any) -> HTMLResponse:
    """Render `template` for `request`; every page gets the plane, the signed-in principal,
    the current time and a fresh nonce for its one inline script."""
    nonce = secrets.token_urlsafe(16)
    plane = request.app.state.plane
    html = environment().get_template(template).render(
        nonce=nonce,
        plane=plane,
        principal=getattr(request.state, "principal", None),
        now=plane.clock.now(),
        age=pages.age_text,
        refresh_seconds=refresh_seconds(len(plane.targets)),
        current=template.removesuffix(".html"),
        **values,
    )
    return HTMLResponse(html, status_code=status_code, headers=security_headers(nonce))


def refresh_seconds(checks: int) -> int:
    """How often pages reload their live parts: every 5 s, slower for large inventories,
    where rendering every component costs the control plane real CPU time."""
    steps = max(1, -(-checks // CHECKS_PER_REFRESH_STEP))
    return min(REFRESH_SECONDS * steps, MAX_REFRESH_SECONDS)


def security_headers(nonce: str) -> dict[str, str]:
    """No framing, no third-party anything, only our own nonce'd script; nothing cached."""
    policy = ("default-src 'none'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
              f"script-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
