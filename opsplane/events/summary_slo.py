"""The sentences of the SLO domain's events: a budget spent, and one that has some left again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsplane.events.words import text


def _share(value: Any) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) and not isinstance(value, bool) else "?"


def _exhausted(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    on = f" ({service})" if service else ""
    return (f"SLO {target}{on} spent its error budget: {_share(d.get('consumed'))} of it used, "
            f"SLI {_share(d.get('sli'))} against {_share(d.get('objective'))}"
            + (f"; deploys of {service} are frozen" if d.get("deploy_gate") and service else ""))


def _restored(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    on = f" ({service})" if service else ""
    return (f"SLO {target}{on} has error budget again: {_share(d.get('remaining'))} left, "
            f"SLI {_share(d.get('sli'))}" + (f" ({text(d.get('reason'))})" if d.get("reason") else ""))


def describers() -> dict[str, Any]:
    """Each SLO event kind's sentence writer (target, service, outcome, details)."""
    return {"slo.budget_exhausted": _exhausted, "slo.budget_restored": _restored}
