"""`metrics.source: prometheus`: alert rules and queries answered by a real Prometheus (Debian's,
started by the tests on loopback with imported samples) instead of opsplane's own samples."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsplane.alerts.flows import Alerting, dependencies
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.sandbox.prometheus import TemporaryPrometheus, openmetrics_text
from opsplane.errors import ConfigError
from opsplane.metrics.promql import PromQLError
from opsplane.metrics.remote import PrometheusClient, PrometheusUnavailable, evaluate_prometheus
from opsplane.store import Store

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None and not Path("/usr/bin/promtool").exists(),
                                reason="Debian's prometheus is not installed (scripts/bootstrap.sh --test)")

DAY = 1768435200.0  # 2026-01-15T00:00:00Z: blocks must lie in the past
AT = DAY + 600.0


def _up(service: str, value: float) -> tuple[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
    labels = (("__name__", "up"), ("job", service), ("service", service))
    return labels, [(DAY + i * 15.0, value) for i in range(60)]


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryPrometheus]:
    server = TemporaryPrometheus(tmp_path_factory.mktemp("prometheus"))
    server.import_openmetrics(openmetrics_text([_up("postgres-main", 0.0), _up("orders", 1.0)]))
    with server:
        yield server


def inventory(url: str) -> str:
    return f"""
platform: {{name: shop}}
services:
  orders: {{depends_on: [postgres-main]}}
databases:
  postgres-main: {{}}
metrics: {{source: prometheus, prometheus_url: "{url}"}}
alerting:
  rules:
    - {{name: TargetDown, expr: up == 0, severity: P0}}
"""


def test_rules_are_evaluated_by_prometheus_and_fire(prometheus: TemporaryPrometheus, store: Store) -> None:
    inv = loads(inventory(prometheus.url), "opsplane.yaml")
    client = PrometheusClient.from_settings(inv.metrics)
    try:
        alerting = Alerting(inv.alerting, store=store, evaluate=evaluate_prometheus(client),
                            clock=ManualClock(datetime.fromtimestamp(AT, UTC)),
                            depends_on=dependencies(inv))
        report = alerting.run_once()
    finally:
        client.close()
    [down] = [a for a in report.evaluation.alerts if a.name == "TargetDown"]
    assert down.labels["service"] == "postgres-main" and down.state.value == "firing"
    assert down.value == 0.0


def test_what_prometheus_refuses_and_an_absent_prometheus_are_errors_not_crashes(
        prometheus: TemporaryPrometheus) -> None:
    client = PrometheusClient(prometheus.url)
    try:
        assert client.query("up", AT)["resultType"] == "vector"
        with pytest.raises(PromQLError, match="Prometheus refused 'sum by \\(\\(up\\)'"):
            client.query("sum by ((up)", AT)
    finally:
        client.close()
    gone = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(PrometheusUnavailable, match="could not be asked"):
        evaluate_prometheus(gone)("up", datetime.fromtimestamp(AT, UTC))
    gone.close()


def test_the_prometheus_source_needs_its_url() -> None:
    with pytest.raises(ConfigError, match="source is prometheus: set prometheus_url"):
        loads("platform: {name: shop}\nmetrics: {source: prometheus}\n", "opsplane.yaml")
