"""What `opsplane alerts` and the dashboard's Alerts page show: each alert, and whether
anything is evaluating the rules at all."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from opsplane.alerts import service
from opsplane.alerts.evaluations import Evaluation
from opsplane.alerts.flows import dependencies
from opsplane.alerts.inhibition import inhibitions
from opsplane.alerts.routing import Muted, mute
from opsplane.alerts.state import Alert, AlertState, runbook_of
from opsplane.config.models import Inventory
from opsplane.timefmt import span
from opsplane.units import format_value

_ORDER = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2, AlertState.INACTIVE: 3}


def alert_rows(
    session: Session, *, inventory: Inventory, now: datetime, include_resolved: bool = False
) -> list[dict[str, Any]]:
    """Stored alerts, firing first then by severity and name, each with why it is muted."""
    stored = service.get_all(session)
    settings = inventory.alerting
    graph = dependencies(inventory) if settings.inhibit_dependents else None
    inhibited = inhibitions(stored, settings.inhibit_rules, graph, now=now,
                            hold=settings.inhibit_dependents_hold,
                            more_severe=settings.inhibit_dependents_more_severe)
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
        "unit": alert.unit,
        # in the rule's unit; an alert received from a Prometheus carries no value: "-"
        "value_text": format_value(alert.value, alert.unit),
        "since": since.isoformat() if since else None,
        "summary": alert.annotations.get("summary"),
        "runbook": runbook_of(alert.annotations),
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


def evaluation_status(evaluation: Evaluation | None, now: datetime) -> dict[str, Any]:
    """Whether the stored alerts are current: `current` is False when no cycle ran within a
    few evaluation intervals (or ever), or when every rule failed in the last one; `text`
    says so in a sentence."""
    if evaluation is None:
        return {"current": False, "evaluated_at": None,
                "text": "No serve has evaluated the alert rules on this store yet: nothing is watching. "
                        "Start `opsplane serve`."}
    age = max(0.0, (now - evaluation.evaluated_at).total_seconds())
    every = span(evaluation.interval) if evaluation.interval >= 1 else f"{evaluation.interval:g}s"
    who = f"by serve on {evaluation.host} (pid {evaluation.pid}, every {every})"
    said = f"Rules last evaluated {span(age)} ago {who}"
    every_rule_failed = evaluation.rules > 0 and len(evaluation.failing) >= evaluation.rules
    if evaluation.is_stale(now):
        text = f"{said}: nothing is evaluating them now, so what follows may be out of date."
    elif every_rule_failed:
        text = f"{said}, but every rule failed to evaluate (`opsplane events --kind alert.rule_failed`)."
    elif evaluation.failing:
        text = (f"{said}; {len(evaluation.failing)} of {evaluation.rules} rules failed: "
                f"{', '.join(evaluation.failing)}.")
    elif evaluation.rules == 0:
        text = f"{said}: nothing for them to read yet (no metrics scraped, no check failing)."
    else:
        text = f"{said}."
    return {
        "current": not evaluation.is_stale(now) and not every_rule_failed,
        "text": text,
        "evaluated_at": evaluation.evaluated_at.isoformat(),
        "age_seconds": round(age, 3),
        "host": evaluation.host,
        "pid": evaluation.pid,
        "interval_seconds": evaluation.interval,
        "started_at": evaluation.started_at.isoformat(),
        "rules": evaluation.rules,
        "failing": list(evaluation.failing),
    }


UNKNOWN = 3


def exit_code_for(rows: list[dict[str, Any]], *, current: bool = True) -> int:
    """3 (unknown) when the rules are not being evaluated (see evaluation_status), else 2
    when a P0/P1 alert fires unmuted, 1 when any other does, else 0."""
    if not current:
        return UNKNOWN
    firing = [r for r in rows if r["state"] == "firing" and r["muted"] is None]
    if any(r["severity"] in ("P0", "P1") for r in firing):
        return 2
    return 1 if firing else 0
