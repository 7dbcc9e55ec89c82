"""The deploy gate of the SLOs (budget policy): a service whose SLO has spent its error budget is
not deployed, unless a person overrides it with a reason (`deploy --override --reason`), which
the deploy records. Only SLOs with `deploy_gate` (the default) freeze deploys; a rollback is
never stopped: it is how a burning service gets better."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsplane.deploy.gates import GateContext


def spent_budgets(ctx: GateContext) -> list[str]:
    """A sentence for each gating SLO of the service whose budget is spent; nothing when the
    service's deploy in progress was asked for with an override, or is a rollback."""
    from opsplane.deploy.service import active_for
    from opsplane.slo import service

    gating = {name: slo for name, slo in ctx.inventory.slos.items()
              if slo.service == ctx.service and slo.deploy_gate}
    if not gating:
        return []
    active = active_for(ctx.session, ctx.service)
    if active is not None and (active.params.get("override") or active.params.get("rollback")):
        return []
    found = []
    for status in service.statuses(ctx.session, gating, now=ctx.now):
        if status.state != "exhausted" or status.consumed is None:
            continue
        sli = f"{status.sli:.3%}" if status.sli is not None else "?"
        found.append(f"SLO {status.name} of {status.service} has spent its error budget: "
                     f"{status.consumed:.0%} of it used ({status.consumed - 1:.0%} over), SLI {sli} "
                     f"against {status.objective:.3%}; its deploys are frozen")
    return found
