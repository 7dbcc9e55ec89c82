"""What `opsplane alerts` (and later the dashboard) shows about each alert."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsplane.alerts import service
from opsplane.alerts.flows import dependencies
from opsplane.alerts.inhibition import inhibitions
from opsplane.alerts.routing import Muted, mute
from opsplane.alerts.state import Alert, AlertState
from opsplane.alerts.templates import go_float
from opsplane.config.models import Inventory

_ORDER = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2, AlertState.INACTIVE: 3}


def alert_rows(
    session: Session, *, inventory: Inventory, now: datetime, include_resolved: bool = False
) -> list[dict[str, Any]]:
    """Stored alerts, firing first then by severity and name, each with why it is muted."""
    stored = service.get_all(session)
    settings = inventory.alerting
    graph = dependencies(inventory) if settings.inhibit_dependents else None
    inhibited = inhibitions(stored, settings.inhibit_rules, graph, now=now,
                            hold=settings.inhibit_dependents_hold)
    alerts = [a for a in stored if include_resolved or a.state is not AlertState.RESOLVED]
    muted = mute(alerts, silences=service.get_silences(session, now=now), inhibited=inhibited, now=now,
                 windows=settings.maintenance_windows)
    alerts.sort(key=lambda a: (_ORDER[a.state], a.labels.get("severity", ""), a.name, a.fingerprint))
    return [_row(alert, muted) for alert in alerts]


def _row(alert: Alert, muted: Muted) -> dict[str, Any]:
    since = {AlertState.FIRING: alert.fired_at, AlertState.RESOLVED: alert.resolved_at}.get(
        alert.state, alert.active_at
    )
    return {
        "state": alert.state.value,
        "name": alert.name,
        "severity": alert.labels.get("severity", ""),
        "labels": dict(alert.labels),
        "value": alert.value if alert.value == alert.value else None,  # NaN is not JSON
        # a rule's alert has a value; one received from a Prometheus carries none
        "value_text": go_float(alert.value) if alert.source == "rule" else "-",
        "since": since.isoformat() if since else None,
        "summary": alert.annotations.get("summary"),
        "runbook": alert.annotations.get("runbook_url"),
        "muted": _why(alert, muted),
        "fingerprint": alert.fingerprint,
        "source": alert.source,  # "rule", or "prometheus" for an alert received from one
    }


def _why(alert: Alert, muted: Muted) -> str | None:
    key = alert.fingerprint
    if key in muted.silenced:
        return "silenced by " + ", ".join(f"#{i}" for i in muted.silenced[key])
    if key in muted.inhibited:
        cause = muted.inhibited[key].cause
        return f"inhibited by {cause.name} ({cause.labels.get('service', '?')})"
    if key in muted.in_maintenance:
        return "maintenance " + ", ".join(muted.in_maintenance[key])
    return None


def exit_code_for(rows: list[dict[str, Any]]) -> int:
    """2 when a P0/P1 alert fires unmuted, 1 when any other does, else 0."""
    firing = [r for r in rows if r["state"] == "firing" and r["muted"] is None]
    if any(r["severity"] in ("P0", "P1") for r in firing):
        return 2
    return 1 if firing else 0
