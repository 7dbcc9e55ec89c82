"""Health routes: services with their current state, and the health report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from opsplane.api.errors import declare
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["health"])


@router.get("/services")
def services(request: Request, _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """Every component of the inventory with its current state and dependencies."""
    from opsplane.health.status import assess

    plane = request.app.state.plane
    statuses = {s.name: s for s in assess(plane.inventory, plane.latest)}
    out = []
    for section, name, component in plane.inventory.components():
        status = statuses[name]
        out.append({
            "name": name,
            "section": section,
            "kind": status.kind,
            "criticality": component.criticality.value,
            "team": component.team,
            "depends_on": list(component.depends_on),
            "runbook": component.runbook,
            "state": status.state.value if status.checked else None,
            "reason": status.reason,
            "impacted": status.impacted,
            "checks": [
                {"name": c.name, "type": c.type,
                 "state": c.result.state.value if c.result else None,
                 "since": _iso(plane.since(f"{name}/{c.name}"))}
                for c in status.checks
            ],
        })
    return out


@router.get("/health", responses=declare(404, meaning={404: "A service named is not in the inventory."}))
def health(
    request: Request,
    service: list[str] | None = Query(None, description="Only these services."),
    _: Principal = Depends(require(Role.VIEWER)),
) -> dict[str, Any]:
    """The latest health report, in the shape of `opsplane health --json`."""
    from opsplane.health.report import as_data
    from opsplane.health.status import assess

    plane = request.app.state.plane
    statuses = assess(plane.inventory, plane.latest)
    if service:
        unknown = set(service) - {s.name for s in statuses}
        if unknown:
            raise HTTPException(404, f"unknown service {', '.join(sorted(unknown))}")
        statuses = [s for s in statuses if s.name in service]
    return as_data(statuses, plane.targets, platform=plane.inventory.platform.name,
                   environment=plane.env, checked_at=plane.clock.now())


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None
