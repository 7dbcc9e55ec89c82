"""The burn-rate alert rules generated from each SLO: the multi-window, multi-burn-rate alerts
of the Google SRE workbook over the series the SLO worker publishes (series.py).

Per SLO, a page rule `SLOFastBurn` (14.4x over 1h and 5m, or 6x over 6h and 30m) at its
`page_severity` and a ticket rule `SLOSlowBurn` (3x over 1d and 2h, or 1x over 3d and 6h) at its
`ticket_severity`; each pair's long window must hold `min_events` events (slices, for a
time-sliced SLO) so a few failures on a quiet night do not page. An alert's value is the share
of the budget left, so its summary can say it; its labels are `slo` and `service`, so routes,
silences and incidents take it as any alert of the service. They join the inventory's rules
(`alerts.pack.effective_rules`) when `serve` evaluates over its own sample store; a Prometheus
(`metrics.source: prometheus`) is given its own rules instead (docs/slo.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from opsplane.alerts.models import AlertRule
from opsplane.slo.models import PAGE_WINDOWS, TICKET_WINDOWS, Slo
from opsplane.slo.series import BUDGET_REMAINING, BURN_RATE, EVENTS
from opsplane.slo.status import window_name

FAST_BURN = "SLOFastBurn"
SLOW_BURN = "SLOSlowBurn"


def burn_expr(name: str, pairs: tuple[tuple[float, float, float], ...], min_events: int) -> str:
    """The budget left of SLO `name` while any pair of windows burns above its factor."""
    legs = []
    for long, short, factor in pairs:
        ln, sn = window_name(long), window_name(short)
        legs.append(f'({BURN_RATE}{{slo="{name}",window="{ln}"}} > {factor:g}'
                    f' and on (slo, service) {BURN_RATE}{{slo="{name}",window="{sn}"}} > {factor:g}'
                    f' and on (slo, service) {EVENTS}{{slo="{name}",window="{ln}"}} >= {min_events})')
    return f'{BUDGET_REMAINING}{{slo="{name}"}} and on (slo, service) ({" or ".join(legs)})'


def _said(pairs: tuple[tuple[float, float, float], ...]) -> str:
    return " or ".join(f"{factor:g}x over {window_name(long)} and {window_name(short)}"
                       for long, short, factor in pairs)


def slo_rules(slos: Mapping[str, Slo]) -> list[AlertRule]:
    """The burn-rate rules of every SLO, in the inventory's order."""
    rules = []
    for name, slo in slos.items():
        for wanted, rule, pairs, severity, pace in (
                (slo.alerts.page, FAST_BURN, PAGE_WINDOWS, slo.alerts.page_severity, "fast"),
                (slo.alerts.ticket, SLOW_BURN, TICKET_WINDOWS, slo.alerts.ticket_severity, "steadily")):
            if not wanted:
                continue
            rules.append(AlertRule.model_validate({
                "name": rule, "severity": severity, "unit": "ratio",
                "expr": burn_expr(name, pairs, slo.alerts.min_events),
                "labels": {"slo": name, "service": slo.service},
                "annotations": {
                    "summary": f"SLO {name} of {slo.service} burns its error budget {pace} "
                               f"({_said(pairs)}); {{{{ $value }}}} of the budget left",
                    "description": f"Objective {slo.objective * 100:g}% over its window; "
                                   f"`opsplane slo status {name}` shows the burn rates by window.",
                },
                **({"runbook": slo.alerts.runbook} if slo.alerts.runbook else {}),
            }))
    return rules
