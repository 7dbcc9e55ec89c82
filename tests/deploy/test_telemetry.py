"""A deploy under way on /metrics: its share of requests and its latest verdict's figures."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, generate_latest

from opsplane.deploy.analysis import analyse
from opsplane.deploy.models import AnalysisSettings
from opsplane.deploy.telemetry import DeployMetrics
from tests.deploy.test_runner import interval


def test_the_latest_verdict_of_each_deploy_is_a_series_per_figure() -> None:
    rng = random.Random(3)
    stable = [interval(rng, requests=300, error_ratio=0.001, latency=0.05) for _ in range(8)]
    canary = [interval(rng, requests=300, error_ratio=0.08, latency=0.05) for _ in range(8)]
    verdict = analyse(stable, canary, AnalysisSettings()).as_dict()
    registry = CollectorRegistry()
    registry.register(DeployMetrics(lambda: [{"id": 4, "service": "orders", "to": "v2-bad", "percent": 25.0,
                                              "state": "running", "step": 3, "verdicts": [verdict]}]))
    text = generate_latest(registry).decode()
    assert 'opsplane_deploy_traffic_ratio{deploy="4",release="v2-bad",service="orders"} 0.25' in text
    line = next(x for x in text.splitlines()
                if x.startswith("opsplane_deploy_error_ratio{") and 'side="canary"' in x)
    assert abs(float(line.split()[-1]) - verdict["canary_error_ratio"]) < 1e-9
    assert 'opsplane_deploy_analysis_p_value{deploy="4",metric="errors",outcome="fail"' in text
