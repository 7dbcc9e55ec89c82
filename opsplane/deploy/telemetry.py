"""The deploys under way as opsplane's own series on `/metrics`: the share of requests on the
new release, and the figures of each one's latest verdict (both releases' error ratio and p95,
requests, and per metric its p-value and effect), the same figures `deploy status` shows."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class DeployMetrics(Collector):
    """Series built when scraped from `deploys()`: the `deploy.service.as_dict` of each deploy
    that is not finished."""

    def __init__(self, deploys: Callable[[], Sequence[dict[str, Any]]]) -> None:
        self._deploys = deploys

    def collect(self) -> Iterator[GaugeMetricFamily]:
        keys = ["service", "deploy", "release"]
        share = GaugeMetricFamily("opsplane_deploy_traffic_ratio", "Share of requests on the release being "
                                  "deployed (0..1).", labels=keys)
        state = GaugeMetricFamily("opsplane_deploy_step", "The step the deploy is at (0-based), labelled "
                                  "with its state.", labels=[*keys, "state"])
        errors = GaugeMetricFamily("opsplane_deploy_error_ratio", "Error ratio of each release in the "
                                   "latest verdict.", labels=[*keys, "side"])
        p95 = GaugeMetricFamily("opsplane_deploy_p95_seconds", "95th percentile latency of each release "
                                "in the latest verdict.", labels=[*keys, "side"])
        requests = GaugeMetricFamily("opsplane_deploy_analysed_requests", "Requests of each release the "
                                     "latest verdict counted.", labels=[*keys, "side"])
        p_value = GaugeMetricFamily("opsplane_deploy_analysis_p_value", "p-value behind each metric's "
                                    "outcome in the latest verdict.", labels=[*keys, "metric", "outcome"])
        effect = GaugeMetricFamily("opsplane_deploy_analysis_effect", "Effect size of each metric in the "
                                   "latest verdict.", labels=[*keys, "metric", "outcome"])
        for deploy in self._deploys():
            labels = [deploy["service"], str(deploy["id"]), deploy["to"]]
            share.add_metric(labels, float(deploy["percent"]) / 100)
            state.add_metric([*labels, deploy["state"]], float(deploy["step"]))
            if not deploy["verdicts"]:
                continue
            verdict = deploy["verdicts"][-1]
            for side in ("stable", "canary"):
                _add(errors, [*labels, side], verdict.get(f"{side}_error_ratio"))
                _add(p95, [*labels, side], verdict.get(f"{side}_p95"))
                _add(requests, [*labels, side], verdict.get(f"{side}_requests"))
            for metric in verdict.get("metrics", []):
                named = [*labels, str(metric.get("name")), str(metric.get("outcome"))]
                _add(p_value, named, metric.get("p_value"))
                _add(effect, named, metric.get("effect_size"))
        yield from (share, state, errors, p95, requests, p_value, effect)


def _add(family: GaugeMetricFamily, labels: list[str], value: Any) -> None:
    if isinstance(value, int | float):
        family.add_metric(labels, float(value))
