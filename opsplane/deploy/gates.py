"""Pre-deploy gates: what must hold before a deploy changes anything.

The deploy's own pre-check asks every gate here about the service. A gate is a function
`(GateContext) -> list[str]` that returns what blocks the deploy, each a sentence that says why
(empty: nothing blocks). Other domains add theirs with one line in `GATES`, as workers are added in
`opsplane/composition.py`: a fresh verified backup of the service's database, error budget left
on its SLO. The built-in gate is the manual's: no open P0/P1 incident and no firing P0/P1 alert on
the service or what it depends on.

Some gates are a policy a person may override (`OVERRIDABLE`: a spent error budget), as a closed
window is: the deploy's `--override --reason` lets it through, and the request records what it
overrode (`check_at_request`). A deploy asked for without the override is refused at once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.config.models import Inventory


@dataclass(frozen=True)
class GateContext:
    inventory: Inventory
    session: Session
    service: str
    now: datetime


Gate = Callable[[GateContext], list[str]]

GATES: tuple[str, ...] = (
    "opsplane.deploy.gates:incidents_and_alerts",
    "opsplane.slo.gate:spent_budgets",
)
OVERRIDABLE: tuple[str, ...] = (
    "opsplane.slo.gate:spent_budgets",
)


def blocking(ctx: GateContext, gates: tuple[str, ...] = GATES) -> list[str]:
    """What every gate (of `gates`) says blocks a deploy of `ctx.service`."""
    found: list[str] = []
    for entry in gates:
        module, _, name = entry.partition(":")
        gate: Gate = getattr(importlib.import_module(module), name)
        found += gate(ctx)
    return found


def check_at_request(ctx: GateContext, *, override: dict[str, object] | None) -> None:
    """At a deploy's request: what the overridable gates block refuses it (DeployRefused, exit
    3), unless the request overrides them; then what it overrode joins `override`, which the
    deploy's `deploy.requested` event records."""
    from opsplane.deploy.service import DeployRefused

    found = blocking(ctx, OVERRIDABLE)
    if not found:
        return
    if override is None:
        raise DeployRefused(f"{'; '.join(found)}. Deploy once it recovers, or override with --override "
                            "--reason TEXT (operator role; recorded)")
    override["gates"] = found


def incidents_and_alerts(ctx: GateContext) -> list[str]:
    """Open P0/P1 incidents and firing P0/P1 alerts on the service or what it depends on."""
    from opsplane.alerts.tables import AlertRow
    from opsplane.incidents.tables import IncidentRow

    watched = {ctx.service, *ctx.inventory.component(ctx.service).depends_on}
    found = [f"incident {row.id} ({row.severity}) is open on {row.service}"
             for row in ctx.session.scalars(select(IncidentRow).where(
                 IncidentRow.status != "resolved", IncidentRow.severity.in_(("P0", "P1")),
                 IncidentRow.service.in_(watched)).order_by(IncidentRow.id))]
    for alert in ctx.session.scalars(select(AlertRow).where(AlertRow.state == "firing")):
        labels = alert.labels or {}
        if labels.get("severity") in ("P0", "P1") and labels.get("service") in watched:
            found.append(f"alert {alert.rule} ({labels['severity']}) is firing on {labels['service']}")
    return found
