"""Dashboard routes: sign-in, overview, one service, dependencies, events.

Every page declares `Depends(viewer)` in its own signature (as the API routes declare their
RoleGuard), so the route test can walk them; only the sign-in form, the stylesheet and the
redirect from `/` are public.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from opsplane.auth import sessions
from opsplane.auth.service import Principal
from opsplane.errors import AuthError
from opsplane.events import service as events
from opsplane.timefmt import span_words
from opsplane.web.service_charts import ChartRange
from opsplane.web.session import (
    COOKIE,
    HOME_PATH,
    LOGIN_PATH,
    cookie_header,
    expired_cookie_header,
    policy,
    safe_next,
    same_origin,
    viewer,
)
from opsplane.web.signin import limiter_for

if TYPE_CHECKING:
    from opsplane.live import LiveState
    from opsplane.web import pages
    from opsplane.web.instances import Instances, RuntimeView

router = APIRouter(tags=["dashboard"])
MAX_FORM_BYTES = 4096
EVENT_LIMIT_DEFAULT = 100
ALERTS_PER_PAGE = 100


def page(request: Request, template: str, *, status_code: int = 200, **values: Any) -> Response:
    """`render.page`, imported with the first page shown: what the pages need (their data,
    charts, Jinja2) stays out of a control plane nobody looks at."""
    from opsplane.web.render import page as render

    return render(request, template, status_code=status_code, **values)


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    return RedirectResponse(HOME_PATH, status_code=307)


@router.get("/ui/static/dashboard.css", include_in_schema=False)
def stylesheet() -> Response:
    return Response(_stylesheet(), media_type="text/css",
                    headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})


def _stylesheet() -> bytes:
    return (Path(__file__).parent / "static" / "dashboard.css").read_bytes()


# --- signing in and out ---------------------------------------------------------------------


@router.get(LOGIN_PATH, include_in_schema=False)
def login_form(request: Request, next: str | None = Query(None)) -> Response:
    return page(request, "login.html", error=None, next=safe_next(next))


@router.post(LOGIN_PATH, include_in_schema=False)
async def login(request: Request) -> Response:
    """Check the token; on success start a session, set its cookie and go where the user was
    headed. An address that failed too often is answered 429 without its token being read."""
    if not same_origin(request):
        return page(request, "login.html", status_code=403, next=HOME_PATH,
                    error="This sign-in form was sent from another site. Open the dashboard "
                          "directly and sign in there.")
    client = request.client.host if request.client else "unknown"
    limiter = limiter_for(request.app)
    wait = limiter.retry_after(client)
    if wait is not None:
        refused = page(request, "login.html", status_code=429, next=HOME_PATH,
                       error=f"Too many failed sign-ins from this address. Try again in "
                             f"{span_words(wait)}.")
        refused.headers["Retry-After"] = str(wait)
        return refused
    form = await read_form(request)
    target = safe_next(form.get("next"))
    token = form.get("token", "").strip()
    if not token:
        return page(request, "login.html", status_code=400, next=target,
                    error="Enter an API token (`opsplane token create --role viewer` makes one).")
    plane = request.app.state.plane
    started = await run_in_threadpool(_sign_in, plane, token, client)
    if isinstance(started, str):
        limiter.failed(client, started)
        return page(request, "login.html", status_code=401, next=target, error=_refusal(started))
    limiter.succeeded(client)
    session_id, _ = started
    header = cookie_header(session_id, secure=request.url.scheme == "https",
                           max_age=policy(plane).lifetime)
    return RedirectResponse(target, status_code=303, headers={"Set-Cookie": header})


def _sign_in(plane: LiveState, token: str, client: str) -> tuple[str, Principal] | str:
    """A new session for `token` and who holds it, recorded as `ui.login`; or why the token may
    not sign in (failures are counted and recorded by `signin.SignInLimiter`)."""
    with plane.store.session() as session:
        try:
            session_id, principal = sessions.start(session, token=token, client=client,
                                                   now=plane.clock.now(), policy=policy(plane))
        except AuthError as exc:
            return str(exc)
        events.record(session, kind="ui.login", actor=principal.actor, target="dashboard",
                      outcome="success", details={"client": client, "role": principal.role.value},
                      clock=plane.clock)
        return session_id, principal


def _refusal(reason: str) -> str:
    if "expired" in reason:
        return f"That token can no longer sign in: {reason}."
    return ("That token is unknown or revoked. Check it, or ask an admin for a new one "
            "(`opsplane token create`).")


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form fields (first value of each), read up to MAX_FORM_BYTES."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            break
    fields = parse_qs(bytes(body[:MAX_FORM_BYTES]).decode("utf-8", errors="replace"))
    return {key: values[0] for key, values in fields.items()}


@router.post("/ui/logout", include_in_schema=False)
async def logout(request: Request, principal: Principal = Depends(viewer)) -> Response:
    """End the session: its cookie is refused from now on, in this browser and any copy."""
    if not same_origin(request):
        return page(request, "login.html", status_code=403, next=HOME_PATH,
                    error="This sign-out was sent from another site; you are still signed in.")
    plane = request.app.state.plane
    session_id = request.cookies.get(COOKIE, "")
    client = request.client.host if request.client else "unknown"

    def end() -> None:
        with plane.store.session() as session:
            if sessions.end(session, session_id=session_id):
                events.record(session, kind="ui.logout", actor=principal.actor, target="dashboard",
                              outcome="success", details={"client": client}, clock=plane.clock)

    await run_in_threadpool(end)
    return RedirectResponse(LOGIN_PATH, status_code=303,
                            headers={"Set-Cookie": expired_cookie_header()})


# --- pages ----------------------------------------------------------------------------------


@router.get("/ui/", include_in_schema=False)
def overview(request: Request, _: Principal = Depends(viewer)) -> Response:
    from opsplane.web import pages

    rows = pages.overview(request.app.state.plane)
    return page(request, "overview.html", rows=rows, counts=pages.state_counts(rows))


@router.get("/ui/services/{name}", include_in_schema=False)
async def service_page(
    request: Request,
    name: str,
    chosen: ChartRange | None = Query(None, alias="range", description="How far back the charts go."),
    _: Principal = Depends(viewer),
) -> Response:
    from opsplane.web import pages

    plane = request.app.state.plane
    # range queries over the samples and a read of the alerts: off the event loop
    detail = await run_in_threadpool(pages.service_detail, plane, name, chosen)
    if detail is None:
        return page(request, "missing.html", status_code=404, name=name)

    def recent() -> tuple[list[pages.EventRow], list[Any]]:
        with plane.store.session() as session:
            return (pages.event_rows(events.get_all(session, service=name, limit=20)),
                    _service_slos(session, plane, name))

    found, slos = await run_in_threadpool(recent)
    instances = (await _runtime(request).instances(plane.clock.now())).of(name)
    return page(request, "service.html", detail=detail, events=found, instances=instances, slos=slos)


def _service_slos(session: Any, plane: LiveState, name: str) -> list[Any]:
    """The service's SLOs with their budget left (`slo_pages.SloLine`), read only when it has some."""
    if not any(slo.service == name for slo in plane.inventory.slos.values()):
        return []
    from opsplane.web import slo_pages

    return slo_pages.service_slos(session, plane.inventory, name, now=plane.clock.now(),
                                  kept=slo_pages.kept_statuses(plane))


@router.get("/ui/dependencies", include_in_schema=False)
def dependencies(request: Request, _: Principal = Depends(viewer)) -> Response:
    from opsplane.web import pages

    rows = pages.overview(request.app.state.plane)
    return page(request, "dependencies.html", graph=pages.dependency_view(request.app.state.plane),
                counts=pages.state_counts(rows))


@router.get("/ui/events", include_in_schema=False)
async def event_log(
    request: Request,
    service: str | None = Query(None),
    kind: str | None = Query(None),
    limit: int = Query(EVENT_LIMIT_DEFAULT, ge=1, le=1000),
    _: Principal = Depends(viewer),
) -> Response:
    from opsplane.web import pages

    plane = request.app.state.plane
    service = service or None
    kind = (kind or "").strip() or None

    def read() -> list[pages.EventRow]:
        with plane.store.session() as session:
            return pages.event_rows(events.get_all(session, service=service, kind=kind, limit=limit))

    found = await run_in_threadpool(read)
    names = [name for _, name, _ in plane.inventory.components()]
    return page(request, "events.html", events=found, services=names, service=service, kind=kind,
                limit=limit)


@router.get("/ui/alerts", include_in_schema=False)
async def alerts_page(
    request: Request,
    number: int = Query(1, alias="page", ge=1, le=1_000_000, description="Which page of alerts."),
    _: Principal = Depends(viewer),
) -> Response:
    """Firing, pending and recently resolved alerts, with value, since, why muted, runbook;
    ALERTS_PER_PAGE a page, firing first, then by severity, name and fingerprint (an order that
    stays put while the page reloads)."""
    from opsplane.alerts import evaluations
    from opsplane.alerts.views import alert_rows, evaluation_status

    plane = request.app.state.plane

    def read() -> tuple[list[dict[str, object]], dict[str, object]]:
        now = plane.clock.now()
        with plane.store.session() as session:
            return (alert_rows(session, inventory=plane.inventory, now=now, include_resolved=True),
                    evaluation_status(evaluations.get(session), now))

    rows, evaluation = await run_in_threadpool(read)
    note = ("No alerts: every rule is quiet." if plane.alerting is not None else
            "No alert rules run: give components a metrics_path so that serve scrapes them.")
    first = (number - 1) * ALERTS_PER_PAGE
    shown = rows[first:first + ALERTS_PER_PAGE]
    pages = max(1, -(-len(rows) // ALERTS_PER_PAGE))
    return page(request, "alerts.html", alerts=shown, total=len(rows), first=first + 1,
                last=first + len(shown), number=number, pages=pages, note=note, evaluation=evaluation)


@router.get("/ui/instances", include_in_schema=False)
async def instances_page(request: Request, _: Principal = Depends(viewer)) -> Response:
    instances: Instances = await _runtime(request).instances(request.app.state.plane.clock.now())
    return page(request, "instances.html", instances=instances)


def _runtime(request: Request) -> RuntimeView:
    """The app's runtime view, opened on first use from the inventory's directory (where the
    runtime's state directory is relative to)."""
    from opsplane.web.instances import RuntimeView

    state = request.app.state
    view = getattr(state, "runtime_view", None)
    if view is None:
        base_dir = getattr(state, "inventory_dir", None) or Path.cwd()
        view = state.runtime_view = RuntimeView(state.plane.inventory, base_dir=base_dir)
    return view
