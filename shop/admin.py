"""`/admin/faults`: read, replace and clear the faults in force, behind a bearer token; the
same guard (`admin_guard`) for a service's own admin routes, such as the catalog's cache warm-up."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request

from shop.faults import FaultInjector, FaultPlan


def _guard(token: str | None) -> Callable[[Request], None]:
    expected = token.encode() if token else None

    def require_admin(request: Request) -> None:
        if expected is None:
            raise HTTPException(403, "admin is disabled: start the service with SHOP_ADMIN_TOKEN set")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise HTTPException(401, "admin needs 'Authorization: Bearer <SHOP_ADMIN_TOKEN>'",
                                headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode(), expected):
            raise HTTPException(403, "wrong admin token")

    return require_admin


def admin_guard(token: str | None) -> Callable[[Request], None]:
    """The dependency that lets only `Authorization: Bearer <token>` through (403 without a token)."""
    return _guard(token)


def admin_router(
    faults: FaultInjector, token: str | None, routes: Callable[[], set[str]], dependencies: list[str],
) -> APIRouter:
    """The admin routes of one service; `routes` lists its route templates for validation."""
    router = APIRouter(prefix="/admin", dependencies=[Depends(_guard(token))], tags=["admin"])

    @router.get("/faults")
    async def get_faults() -> dict[str, Any]:
        return faults.plan.model_dump()

    @router.put("/faults")
    async def put_faults(plan: FaultPlan) -> dict[str, Any]:
        problems = plan.problems(routes(), dependencies)
        if problems:
            raise HTTPException(422, problems)
        faults.apply(plan)
        return faults.plan.model_dump()

    @router.delete("/faults")
    async def delete_faults() -> dict[str, Any]:
        faults.clear()
        return faults.plan.model_dump()

    return router
