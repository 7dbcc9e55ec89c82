"""Incidents and alert signals for the incident tests, built fresh for each test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opsplane.incidents.models import AlertSignal, IncidentView, Status

T0 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)


def incident(id: int = 1, *, severity: str = "P1", service: str = "orders",
             status: Status = Status.TRIGGERED, **fields: Any) -> IncidentView:
    data: dict[str, Any] = {"title": "Checkout fails", "started_at": T0,
                            "group_key": f"{service}|group="}
    data.update(fields)
    return IncidentView(id=id, service=service, severity=severity, status=status, **data)


def signal(name: str = "HighErrorRate", *, severity: str = "P1", service: str = "orders",
           group: str | None = None, minutes: float = 0) -> AlertSignal:
    return AlertSignal(fingerprint=f"{name}-{service}", name=name, severity=severity, service=service,
                       group=group or f"{service}|group=", summary=f"{name} on {service}",
                       active_at=T0 + timedelta(minutes=minutes))


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)
