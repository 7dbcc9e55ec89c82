"""Dashboard sign-in: a session kept in the store, its random id in a cookie the page scripts
cannot read.

Signing in checks the token once and starts a session (`auth.sessions`); the cookie carries
only the session's id, never the token (HttpOnly, SameSite=Strict, Secure over HTTPS, Path=/ui,
Max-Age the session's lifetime). Every page resumes the session: signing out deletes it, so the
old cookie is refused; so is one unused for server.session_idle_timeout, one older than
server.session_lifetime, and every session of a token that is revoked or has expired.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from opsplane.auth import sessions
from opsplane.auth.service import Principal, Role
from opsplane.errors import AuthError

if TYPE_CHECKING:
    from opsplane.live import LiveState

COOKIE = "opsplane_session"
LOGIN_PATH = "/ui/login"
HOME_PATH = "/ui/"


def policy(plane: LiveState) -> sessions.SessionPolicy:
    """How long the dashboard's sessions last, from the inventory's `server` section."""
    server = plane.inventory.server
    return sessions.SessionPolicy(idle=timedelta(seconds=server.session_idle_timeout),
                                  lifetime=timedelta(seconds=server.session_lifetime))


def cookie_header(session_id: str, *, secure: bool, max_age: timedelta) -> str:
    """The Set-Cookie value that signs a browser in: the session's id, nothing else."""
    # Scoped to the dashboard: the API takes bearer tokens only and never sees the cookie.
    flags = (f"; Path=/ui; Max-Age={int(max_age.total_seconds())}; HttpOnly; SameSite=Strict"
             + ("; Secure" if secure else ""))
    return f"{COOKIE}={session_id}{flags}"


def expired_cookie_header() -> str:
    """The Set-Cookie value that signs a browser out."""
    return f"{COOKIE}=; Path=/ui; Max-Age=0; HttpOnly; SameSite=Strict"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path on this server, never another site."""
    if not target or not target.startswith("/ui/") or target.startswith("//") or "\\" in target:
        return HOME_PATH
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return HOME_PATH
    return target


def login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{LOGIN_PATH}?next={quote(safe_next(here), safe='/')}"


def same_origin(request: Request) -> bool:
    """False when a browser says this form was posted from another site.

    SameSite=Strict already keeps the cookie off cross-site requests; this also refuses a
    cross-site login form (which would sign the victim in as the attacker).
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:  # what current browsers say about every request
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or an older one that sends no Origin here
        return True
    return urlsplit(origin).netloc == request.headers.get("host")


async def principal_for(request: Request, session_id: str) -> Principal:
    """Who holds the session `session_id` in the store of the control plane serving `request`."""
    plane = request.app.state.plane
    lasting = policy(plane)

    def check() -> Principal:
        with plane.store.session() as session:
            return sessions.resume(session, session_id=session_id, now=plane.clock.now(),
                                   policy=lasting)

    return await run_in_threadpool(check)


class SessionGuard:
    """The role check of every dashboard page: `Depends(SessionGuard(Role.VIEWER))`.

    Like `auth.deps.RoleGuard`, but for a browser: no cookie, or a cookie whose session has
    ended (signed out, idle, too old, its token revoked or expired) or never was, sends the
    browser to the sign-in page (and clears the cookie).
    """

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(self, request: Request) -> Principal:
        session_id = request.cookies.get(COOKIE)
        if not session_id:
            raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in first",
                                headers={"Location": login_url(request)})
        try:
            principal = await principal_for(request, session_id)
        except AuthError:
            raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in again",
                                headers={"Location": login_url(request),
                                         "Set-Cookie": expired_cookie_header()}) from None
        if not principal.role.allows(self.role):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"this page needs the {self.role.value} role; "
                                f"token {principal.name!r} has {principal.role.value}")
        request.state.principal = principal
        return principal


viewer = SessionGuard(Role.VIEWER)
