"""The burn-rate rules generated from SLOs, evaluated by the engine over the SLO series: a page
when both windows of a pair burn above its factor with enough events, never on a short burst or
a quiet night; the alert's value is the budget left; the rules join the effective rule set."""

from __future__ import annotations

from typing import Any

from opsplane.alerts.pack import effective_rules
from opsplane.config.loader import loads
from opsplane.metrics.promql import InstantVector, MemorySource, instant
from opsplane.slo.rules import slo_rules

NOW = 1_800_000_000.0
INVENTORY = loads("""\
platform: {name: shop}
services:
  gateway: {port: 8080, metrics_path: /metrics}
slos:
  gateway-availability:
    service: gateway
    objective: 99.9%
    sli: {events: {bad: 'http_requests_total{status=~"5.."}', total: http_requests_total}}
    alerts: {runbook: https://runbooks.example/slo-burn, ticket_severity: P2}
  gateway-latency:
    service: gateway
    objective: 99%
    sli: {latency: {histogram: 'http_request_duration_seconds{service="gateway"}', threshold: 150ms}}
    alerts: {ticket: false}
""")


def source(slo: str, rates: dict[str, float], events: dict[str, float], remaining: float) -> MemorySource:
    common = {"slo": slo, "service": "gateway", "env": "production", "job": "opsplane"}
    found = MemorySource()
    for window, rate in rates.items():
        found.add({"__name__": "opsplane_slo_burn_rate", "window": window, **common}, [(NOW - 5, rate)])
    for window, count in events.items():
        found.add({"__name__": "opsplane_slo_events", "window": window, **common}, [(NOW - 5, count)])
    found.add({"__name__": "opsplane_slo_budget_remaining", **common}, [(NOW - 5, remaining)])
    return found


def fired(rule_name: str, data: MemorySource, slo: str = "gateway-availability") -> list[Any]:
    [rule] = [r for r in slo_rules(INVENTORY.slos) if r.name == rule_name and r.labels["slo"] == slo]
    value = instant(rule.expr, data, NOW)
    assert isinstance(value, InstantVector)
    return [(dict(labels), v) for labels, v in value.samples]


CALM = {"5m": 0.0, "30m": 0.0, "1h": 0.0, "2h": 0.0, "6h": 0.0, "1d": 0.0, "3d": 0.0}
BUSY = dict.fromkeys(CALM, 5000.0)


def test_a_fast_burn_in_both_windows_pages_with_the_budget_left_as_its_value() -> None:
    data = source("gateway-availability", {**CALM, "1h": 20.0, "5m": 30.0}, BUSY, 0.62)
    [(labels, value)] = fired("SLOFastBurn", data)
    assert value == 0.62
    assert labels["slo"] == "gateway-availability" and labels["service"] == "gateway"
    assert "window" not in labels  # one alert per SLO, whichever pair of windows burns


def test_the_six_hour_pair_pages_too() -> None:
    data = source("gateway-availability", {**CALM, "6h": 7.0, "30m": 8.0}, BUSY, 0.4)
    assert len(fired("SLOFastBurn", data)) == 1


def test_a_burst_that_is_over_does_not_page() -> None:
    # the hour still remembers it, the last five minutes are calm again
    data = source("gateway-availability", {**CALM, "1h": 20.0, "5m": 1.0}, BUSY, 0.62)
    assert fired("SLOFastBurn", data) == []


def test_a_quiet_night_does_not_page_on_a_handful_of_failures() -> None:
    data = source("gateway-availability", {**CALM, "1h": 50.0, "5m": 50.0}, {**BUSY, "1h": 40.0}, 0.9)
    assert fired("SLOFastBurn", data) == []  # 40 events in the hour, below min_events 100


def test_a_slow_burn_opens_a_ticket_at_its_own_severity_not_a_page() -> None:
    data = source("gateway-availability", {**CALM, "1d": 4.0, "2h": 3.5}, BUSY, 0.7)
    assert fired("SLOFastBurn", data) == []
    assert len(fired("SLOSlowBurn", data)) == 1
    rules = {(r.name, r.labels["slo"]): r for r in slo_rules(INVENTORY.slos)}
    assert rules["SLOSlowBurn", "gateway-availability"].severity == "P2"
    assert rules["SLOFastBurn", "gateway-availability"].runbook == "https://runbooks.example/slo-burn"
    assert ("SLOSlowBurn", "gateway-latency") not in rules  # ticket: false


def test_the_burn_rules_join_the_inventorys_rules() -> None:
    names = [(r.name, r.labels.get("slo")) for r in effective_rules(INVENTORY.alerting,
                                                                   slo_rules(INVENTORY.slos))]
    assert ("HighErrorRate", None) in names
    assert names[-3:] == [("SLOFastBurn", "gateway-availability"), ("SLOSlowBurn", "gateway-availability"),
                          ("SLOFastBurn", "gateway-latency")]
