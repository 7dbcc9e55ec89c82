"""Dashboard sign-in: an API token entered once, carried in a cookie the page scripts cannot read.

The cookie holds the token itself (HttpOnly, SameSite=Strict, Secure over HTTPS, no expiry:
it ends with the browser session), and every page checks it with `auth.service.authenticate`,
so a revoked token locks its holder out on the next page load. There is no server-side session
state to lose on a restart.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request, status
from starlette.concurrency import run_in_threadpool

from opsplane.auth.service import Principal, Role, authenticate
from opsplane.errors import AuthError

COOKIE = "opsplane_session"
LOGIN_PATH = "/ui/login"
HOME_PATH = "/ui/"


def cookie_header(token: str, *, secure: bool) -> str:
    """The Set-Cookie value that signs a browser in."""
    # Scoped to the dashboard: the API takes bearer tokens only and never sees the cookie.
    flags = "; Path=/ui; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
    return f"{COOKIE}={token}{flags}"


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


async def principal_for(request: Request, token: str) -> Principal:
    """Authenticate `token` against the store of the control plane serving `request`."""
    store = request.app.state.plane.store

    def check() -> Principal:
        with store.session() as session:
            return authenticate(session, token=token)

    return await run_in_threadpool(check)


class SessionGuard:
    """The role check of every dashboard page: `Depends(SessionGuard(Role.VIEWER))`.

    Like `auth.deps.RoleGuard`, but for a browser: no cookie, or a cookie whose token is
    unknown or revoked, sends the browser to the sign-in page (and clears the cookie).
    """

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(self, request: Request) -> Principal:
        token = request.cookies.get(COOKIE)
        if not token:
            raise HTTPException(status.HTTP_303_SEE_OTHER, "sign in first",
                                headers={"Location": login_url(request)})
        try:
            principal = await principal_for(request, token)
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
