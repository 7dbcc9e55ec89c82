"""The role check every API route declares: `Depends(require(Role.VIEWER))`."""

from __future__ import annotations

from fastapi import HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from opsplane.auth.service import Principal, Role, authenticate
from opsplane.errors import AuthError

# A security dependency, so that the OpenAPI document names the scheme on every route that
# checks a role; missing credentials are this guard's 401, not FastAPI's.
bearer = HTTPBearer(auto_error=False, scheme_name="token",
                    description="An API token (`opsplane token create --role ROLE`), sent as "
                                "`Authorization: Bearer ops_...`.")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="opsplane"'}


class RoleGuard:
    """A FastAPI dependency that admits a bearer token holding `role` or a higher one."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(
        self, request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
    ) -> Principal:
        if credentials is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required",
                                headers=_CHALLENGE)
        plane = request.app.state.plane

        def check() -> Principal:
            with plane.store.session() as session:
                return authenticate(session, token=credentials.credentials, clock=plane.clock)

        from starlette.concurrency import run_in_threadpool

        try:
            principal = await run_in_threadpool(check)
        except AuthError as exc:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=_CHALLENGE) from None
        if not principal.role.allows(self.role):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"this needs the {self.role.value} role; "
                                f"token {principal.name!r} has {principal.role.value}")
        request.state.principal = principal
        return principal


def require(role: Role) -> RoleGuard:
    return RoleGuard(role)
