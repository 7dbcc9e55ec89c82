"""Rules and alerts for the alerting tests, built fresh for each test."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opsplane.alerts.models import AlertRule
from opsplane.alerts.state import Alert, AlertState, fingerprint

T0 = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)

# orders needs postgres: the smallest inventory where inhibition by depends_on applies
SHOP_INVENTORY = """
platform: {name: shop}
services:
  orders: {port: 8001, depends_on: [postgres]}
databases:
  postgres: {port: 5432}
"""


def rule(name: str = "HighErrorRate", **fields: Any) -> AlertRule:
    data: dict[str, Any] = {"name": name, "expr": f"{name.lower()}_expr > 0", "severity": "P1"}
    data.update(fields)
    return AlertRule.model_validate(data)


def alert(
    name: str = "HighErrorRate",
    *,
    state: AlertState = AlertState.FIRING,
    at: datetime = T0,
    severity: str = "P1",
    value: float = 1.0,
    **labels: str,
) -> Alert:
    """A firing (or given-state) alert with alertname and severity set, as a rule makes it."""
    full = {**labels, "alertname": name, "severity": severity}
    return Alert(
        fingerprint=fingerprint(full), rule=f'{name}{{severity="{severity}"}}', labels=full, state=state,
        value=value, annotations={}, active_at=at, last_seen_at=at,
        fired_at=at if state in (AlertState.FIRING, AlertState.RESOLVED) else None,
        resolved_at=at if state is AlertState.RESOLVED else None,
    )
