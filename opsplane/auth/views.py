"""Auth routes: who am I, and the OpenAPI document (behind a token like everything else)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["auth"])


@router.get("/whoami")
def whoami(principal: Principal = Depends(require(Role.VIEWER))) -> dict[str, str]:
    """The name and role of the token that asks."""
    return {"name": principal.name, "role": principal.role.value}


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """The OpenAPI document of this API (docs/api.md), built once from the routes."""
    return request.app.openapi()  # type: ignore[no-any-return]
