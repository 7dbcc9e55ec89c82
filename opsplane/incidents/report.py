"""The incident report: how many, and how fast they were detected, acknowledged and resolved,
by severity and by service, against each severity's response and resolution targets.

MTTA is acknowledgement minus start, MTTD is start minus the first alert or failing check
(where known), MTTR is resolution minus start; each a mean over the incidents that have it.
An incident still waiting past its target counts as having missed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from statistics import fmean
from typing import Any

from opsplane.incidents.models import SEVERITIES, IncidentsSettings, IncidentView


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(fmean(present), 1) if present else None


def time_to_acknowledge(incident: IncidentView) -> float | None:
    if incident.acknowledged_at is None:
        return None
    return (incident.acknowledged_at - incident.started_at).total_seconds()


def time_to_detect(incident: IncidentView) -> float | None:
    if incident.detected_at is None:
        return None
    return max(0.0, (incident.started_at - incident.detected_at).total_seconds())


def time_to_resolve(incident: IncidentView) -> float | None:
    if incident.resolved_at is None:
        return None
    return (incident.resolved_at - incident.started_at).total_seconds()


def _within(taken: float | None, target: float, waited: float) -> bool | None:
    """True when done within target, False when done late or still waiting past it, None
    while still waiting inside it."""
    if taken is not None:
        return taken <= target
    return False if waited > target else None


def summarise(incidents: Sequence[IncidentView], settings: IncidentsSettings,
              now: datetime) -> dict[str, Any]:
    """Count, MTTA, MTTD, MTTR and targets met for a group of incidents."""
    acknowledged: list[bool] = []
    resolved: list[bool] = []
    for incident in incidents:
        policy = settings.policy(incident.severity)
        waited = (now - incident.started_at).total_seconds()
        ack = _within(time_to_acknowledge(incident), policy.response_time, waited)
        fixed = _within(time_to_resolve(incident), policy.resolution_target, waited)
        if ack is not None:
            acknowledged.append(ack)
        if fixed is not None:
            resolved.append(fixed)
    return {
        "count": len(incidents),
        "open": sum(1 for i in incidents if i.status.is_open),
        "mtta": _mean(time_to_acknowledge(i) for i in incidents),
        "mttd": _mean(time_to_detect(i) for i in incidents),
        "mttr": _mean(time_to_resolve(i) for i in incidents),
        "response_met": sum(acknowledged), "response_judged": len(acknowledged),
        "resolution_met": sum(resolved), "resolution_judged": len(resolved),
    }


def _grouped(incidents: Sequence[IncidentView], key: Callable[[IncidentView], str],
             order: Iterable[str], settings: IncidentsSettings, now: datetime,
             label: str) -> list[dict[str, Any]]:
    groups: dict[str, list[IncidentView]] = {}
    for incident in incidents:
        groups.setdefault(key(incident), []).append(incident)
    return [{label: name, **summarise(groups[name], settings, now)} for name in order if name in groups]


def incident_report(incidents: Sequence[IncidentView], settings: IncidentsSettings, *,
                    since: datetime, now: datetime) -> dict[str, Any]:
    """The report over the incidents started since `since`: overall, by severity (with the
    severity's targets) and by service."""
    chosen = [i for i in incidents if since <= i.started_at <= now]
    by_severity = _grouped(chosen, lambda i: i.severity, SEVERITIES, settings, now, "severity")
    for row in by_severity:
        policy = settings.policy(row["severity"])
        row["response_target"] = policy.response_time
        row["resolution_target"] = policy.resolution_target
    services = sorted({i.service for i in chosen})
    return {
        "since": since.isoformat(), "until": now.isoformat(),
        "overall": summarise(chosen, settings, now),
        "by_severity": by_severity,
        "by_service": _grouped(chosen, lambda i: i.service, services, settings, now, "service"),
    }
