"""Alert rules evaluated by the PromQL engine over scraped-style series."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsplane.alerts.engine import evaluate_with
from opsplane.alerts.state import Alert, AlertState, evaluate_rules
from opsplane.metrics.promql import MemorySource, PromQLError
from tests.alerts.factories import T0, rule

START = T0.timestamp()


def _requests(status: str, per_scrape: float) -> tuple[dict[str, str], list[tuple[float, float]]]:
    labels = {"__name__": "http_requests_total", "service": "orders", "env": "production", "status": status}
    return labels, [(START + 15 * i, per_scrape * i) for i in range(80)]


SOURCE = MemorySource([_requests("200", 95), _requests("500", 5)])
ERROR_RATE = rule(
    "HighErrorRate", **{"for": "5m"},
    expr='sum by (service, env) (rate(http_requests_total{status=~"5.."}[5m])) '
         "/ sum by (service, env) (rate(http_requests_total[5m])) > 0.01",
    annotations={"summary": "{{ $labels.service }}: {{ $value | humanizePercentage }}"},
)


def test_a_rule_over_the_engine_goes_pending_then_fires_after_for() -> None:
    evaluate = evaluate_with(SOURCE)
    alerts: list[Alert] = []
    states = []
    for minute in (1, 3, 6):
        cycle = evaluate_rules([ERROR_RATE], evaluate, alerts, T0 + timedelta(minutes=minute))
        alerts = cycle.alerts
        states.append([a.state for a in alerts])
    assert states == [[AlertState.PENDING], [AlertState.PENDING], [AlertState.FIRING]]
    (alert,) = alerts
    assert alert.labels == {"service": "orders", "env": "production", "alertname": "HighErrorRate",
                            "severity": "P1"}
    assert alert.annotations["summary"] == "orders: 5%"


def test_a_scalar_result_is_one_alert_without_series_labels() -> None:
    assert evaluate_with(SOURCE)("1 + 1", T0) == [({}, 2.0)]


def test_a_range_vector_result_is_refused() -> None:
    with pytest.raises(PromQLError, match="instant vector or a scalar"):
        evaluate_with(SOURCE)("http_requests_total[5m]", T0 + timedelta(minutes=6))
