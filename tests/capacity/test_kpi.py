"""KPIs as pure functions: their PromQL, where a value stands against target, warning and
critical, the inventory's changes to the built-ins and its own KPIs, and located errors."""

from __future__ import annotations

import pytest

from opsplane.capacity.kpi import expression, judge, measure, report
from opsplane.capacity.models import BUILTIN_KPIS, resolve_kpis
from opsplane.config.loader import loads
from opsplane.errors import ConfigError

SEARCH, API, DB, CACHE = BUILTIN_KPIS


def test_each_kpi_is_one_promql_expression_over_the_window() -> None:
    assert expression(SEARCH, 3600) == ('histogram_quantile(0.95, sum by (le) '
                                        '(rate(http_request_duration_seconds_bucket{route=~"(/api)?/search"}[1h])))')
    assert expression(DB, 300) == ("histogram_quantile(0.95, sum by (le) "
                                   "(rate(db_query_duration_seconds_bucket[5m])))")
    assert expression(CACHE, 3600) == ('sum(rate(cache_requests_total{result="hit"}[1h])) / '
                                       'sum(rate(cache_requests_total[1h]))')


@pytest.mark.parametrize(("kpi", "value", "status"), [
    (SEARCH, 0.25, "met"), (SEARCH, 0.3, "met"), (SEARCH, 0.4, "missed"), (SEARCH, 0.7, "warning"),
    (SEARCH, 1.2, "critical"), (SEARCH, None, "unknown"), (SEARCH, float("nan"), "unknown"),
    (API, 0.19, "met"), (API, 0.21, "missed"), (DB, 0.15, "warning"), (DB, 0.25, "critical"),
    (CACHE, 0.9, "met"), (CACHE, 0.75, "missed"), (CACHE, 0.6, "warning"), (CACHE, 0.4, "critical"),
])
def test_a_value_stands_against_its_levels(kpi: object, value: float | None, status: str) -> None:
    assert judge(kpi, value) == status  # type: ignore[arg-type]


def test_the_report_finds_what_is_not_met_and_its_outcome_is_the_worst() -> None:
    values = {"search": [({}, 0.12)], "api_p95": [({}, 0.6)], "db_query_p95": [],
              "cache_hit_rate": [({}, 0.75)]}
    results = measure(BUILTIN_KPIS, 3600, lambda expr: next(v for k, v in values.items()
                                                            if expression(_kpi(k), 3600) == expr))
    found = report(results, window=3600)
    assert found.outcome == "warning"
    assert {f.subject: f.severity for f in found.findings} == {
        "api_p95": "warning", "db_query_p95": "info", "cache_hit_rate": "info"}
    assert "600 ms, above its warning level 500 ms (target under 200 ms)" in found.findings[0].what
    assert found.summary == "1 of 4 KPIs met their targets over the last 1h; 1 without data"
    row = "| search (search answers, 95th percentile) | 120 ms | 300 ms | 500 ms | 1000 ms | met |"
    assert row in found.markdown


def _kpi(name: str):  # type: ignore[no-untyped-def]
    return next(k for k in BUILTIN_KPIS if k.name == name)


def test_the_inventory_changes_a_builtin_and_adds_its_own() -> None:
    inventory = loads("""
platform: {name: shop}
capacity:
  kpis:
    search: {target: 250ms}
    cache_hit_rate: {target: 85%}
    db_query_p95: {enabled: false}
    checkout: {histogram: 'http_request_duration_seconds{route="/api/checkout"}', quantile: 0.99,
               target: 800ms, warning: 1500ms, critical: 3s}
""")
    kpis = {k.name: k for k in resolve_kpis(inventory.capacity)}
    assert list(kpis) == ["search", "api_p95", "cache_hit_rate", "checkout"]
    assert (kpis["search"].target, kpis["search"].warning) == (0.25, 0.5)
    assert kpis["cache_hit_rate"].target == 0.85 and kpis["cache_hit_rate"].kind == "ratio"
    checkout = kpis["checkout"]
    assert (checkout.kind, checkout.quantile, checkout.critical) == ("latency", 0.99, 3.0)


def test_a_kpi_of_its_own_without_its_levels_is_a_located_error() -> None:
    with pytest.raises(ConfigError) as caught:
        loads("platform: {name: shop}\ncapacity:\n  kpis:\n    checkout: {histogram: h, target: 1s}\n",
              "opsplane.yaml")
    [problem] = caught.value.problems
    assert str(problem) == ("opsplane.yaml:4:15: capacity.kpis.checkout: a KPI of its own needs target, "
                            "warning and critical")
    with pytest.raises(ConfigError) as caught:
        loads("platform: {name: shop}\ncapacity:\n  kpis:\n    search: {histogram: 'h{a=}'}\n",
              "opsplane.yaml")
    assert "opsplane.yaml:4:13: capacity.kpis.search: its PromQL does not parse" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        loads("platform: {name: shop}\ncapacity:\n  directories: {up: {path: x, size: lots}}\n",
              "opsplane.yaml")
    assert "expected a size such as 10GiB" in str(caught.value)
