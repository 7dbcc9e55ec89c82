"""A service's charts over a chosen range: rates, error ratio and percentiles computed by
PromQL from the scraped samples, the probe history's tier for the range, and the thresholds of
the service's firing alerts read from their rules."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from opsplane.alerts import service as alerts
from opsplane.alerts.models import RulePack
from opsplane.alerts.pack import builtin_rules
from opsplane.alerts.state import Alert, AlertState, fingerprint, rule_id
from opsplane.clock import ManualClock
from opsplane.health.models import ProbeResult, State
from opsplane.metrics.ingest import ingest
from opsplane.metrics.scrape import ScrapeTarget
from opsplane.metrics.store import SampleStore
from opsplane.server import ControlPlane
from opsplane.web.chart_rules import RuleThreshold, rule_threshold
from opsplane.web.service_charts import (
    ChartRange,
    default_range,
    latency_quantiles,
    rate_window,
    request_rates,
    steps,
)

# --- which chart a rule watches, at what value ----------------------------------------------


def test_the_built_in_rules_draw_on_the_charts_they_watch() -> None:
    pack = RulePack.model_validate({"thresholds": {"error_rate": 0.02, "latency_p95": 0.3}})
    found = {(r.name, r.severity): rule_threshold(r.expr) for r in builtin_rules(pack)}
    assert found["HighErrorRate", "P1"] == RuleThreshold("errors", 0.02, ">")
    assert found["HighLatencyP95", "P2"] == RuleThreshold("latency", 0.3, ">")
    assert found["HighLatencyP99", "P1"] == RuleThreshold("latency", 1.0, ">")
    # "1 - errors / all < 0.995" is an error ratio above 0.5 %
    assert found["LowGatewaySuccess", "P1"] == RuleThreshold("errors", 0.005, ">")
    # compared with another expression, or not a charted quantity: no line
    assert found["RequestRateDrop", "P0"] is None
    assert found["CheckFailing", "P1"] is None and found["LowPaymentSuccess", "P1"] is None


def test_a_team_s_own_rules_are_read_the_same_way() -> None:
    ratio = ('sum(rate(http_requests_total{code=~"5.."}[1m])) / '
             "sum(rate(http_requests_total[1m]))")
    assert rule_threshold(f"{ratio} >= 0.05") == RuleThreshold("errors", 0.05, ">=")
    assert rule_threshold(f"0.05 < {ratio}") == RuleThreshold("errors", 0.05, ">")
    assert rule_threshold('sum(rate(http_requests_total{service="cart"}[5m])) < 2') == (
        RuleThreshold("requests", 2, "<"))
    assert rule_threshold("histogram_quantile(0.9, rate(rpc_seconds_bucket[5m])) > 0.25") == (
        RuleThreshold("latency", 0.25, ">"))
    assert rule_threshold("histogram_quantile(0.9, rate(rpc_bytes_bucket[5m])) > 5") is None
    assert rule_threshold("up == 0") is None
    assert rule_threshold("rate(http_requests_total[5m]) > bool 3") is None
    assert rule_threshold("this is not promql") is None


# --- ranges ---------------------------------------------------------------------------------


def test_each_range_draws_sixty_points_from_its_own_tier() -> None:
    assert [(r.value, r.seconds / r.step, r.tier) for r in ChartRange] == [
        ("15m", 60, 0), ("1h", 60, 1), ("6h", 60, 2), ("24h", 60, 3)]
    times = steps(10_000.0, 900, 15)
    assert len(times) == 60 and times[-1] == 10_000 and times[1] - times[0] == 15
    assert rate_window(15, 5) == 20 and rate_window(360, 5) == 360  # at least four scrapes


def test_a_young_serve_shows_its_first_quarter_hour_by_default() -> None:
    clock = ManualClock()
    started = clock.now()
    assert default_range(None, clock.now()) is ChartRange.MINUTES_15
    clock.advance(14 * 60)
    assert default_range(started, clock.now()) is ChartRange.MINUTES_15
    clock.advance(60)
    assert default_range(started, clock.now()) is ChartRange.HOUR


# --- from samples to rates, ratios and percentiles ------------------------------------------


def scrape(store: SampleStore, at: float, text: str, component: str = "catalog") -> None:
    ingest(store, ScrapeTarget(component, f"http://127.0.0.1:8001/{component}", 5.0, 1.0), "production",
           text, at=at, duration=0.01)


def steady(store: SampleStore, *, start: float, seconds: int, status_label: str = "status") -> None:
    """20 requests a second, one of them answered 503, every 5 s; latencies in a histogram
    where half are under 10 ms, 95 % under 100 ms and all under 1 s."""
    for t in range(0, seconds + 1, 5):
        text = (f'http_requests_total{{{status_label}="200",route="/x"}} {1000 + 19 * t}\n'
                f'http_requests_total{{{status_label}="503",route="/x"}} {50 + t}\n')
        for le, share in (("0.01", 0.5), ("0.1", 0.95), ("1", 1.0), ("+Inf", 1.0)):
            text += f'http_request_duration_seconds_bucket{{le="{le}"}} {share * 20 * (t + 100)}\n'
        scrape(store, start + t, text)


@pytest.mark.parametrize("status_label", ["status", "code"])
def test_request_rates_and_the_error_ratio_come_from_one_range_query(status_label: str) -> None:
    clock = ManualClock()
    store = SampleStore(clock=clock)
    start = clock.now().timestamp()
    steady(store, start=start, seconds=300, status_label=status_label)
    clock.advance(300)
    times = steps(start + 300, 120, 15)
    rates = request_rates(store, times, window=20)["catalog"]
    assert rates.requests == pytest.approx([20.0] * 8)
    assert rates.server_errors == pytest.approx([1.0] * 8)
    assert rates.error_ratios() == pytest.approx([0.05] * 8)
    assert rates.latest == pytest.approx(20.0)
    assert set(request_rates(store, times, window=20, service="cart")) == set()


def test_percentiles_come_from_the_histogram_and_a_service_without_one_has_none() -> None:
    clock = ManualClock()
    store = SampleStore(clock=clock)
    start = clock.now().timestamp()
    steady(store, start=start, seconds=120)
    times = steps(start + 120, 60, 15)
    found = latency_quantiles(store, times, window=20, service="catalog")
    assert list(found) == [0.5, 0.95, 0.99]
    assert found[0.5] == pytest.approx([0.01] * 4)  # the bucket boundary half the requests are under
    assert found[0.95] == pytest.approx([0.1] * 4)
    assert 0.1 < found[0.99][-1] < 1.0
    assert latency_quantiles(store, times, window=20, service="cart") == {}


# --- the service page -----------------------------------------------------------------------


def firing(plane: ControlPlane, name: str, severity: str, service: str,
           state: AlertState = AlertState.FIRING) -> None:
    [rule] = [r for r in builtin_rules(plane.inventory.alerting.builtin_rules)
              if r.name == name and r.severity.value == severity]
    labels = {"alertname": name, "severity": severity, "service": service, "env": "production"}
    now = plane.clock.now()
    with plane.store.session() as session:
        alerts.save_changes(session, stored={}, dropped=[], now=now, alerts=[Alert(
            fingerprint=fingerprint(labels), rule=rule_id(rule), labels=labels, state=state,
            value=0.05, annotations={}, active_at=now, last_seen_at=now,
            fired_at=now if state is AlertState.FIRING else None)])


def charts(html: str) -> dict[str, str]:
    return dict(re.findall(r'<figure class="timechart" data-chart="([a-z]+)">(.*?)</figure>', html, re.S))


def test_the_service_page_draws_its_three_charts_over_the_chosen_range(
        signed_in: TestClient, plane: ControlPlane, clock: ManualClock) -> None:
    assert plane.samples is not None
    plane.started_at = clock.now()
    steady(plane.samples, start=clock.now().timestamp(), seconds=600)
    clock.advance(600)
    firing(plane, "HighErrorRate", "P1", "catalog")
    firing(plane, "HighErrorRate", "P1", "gateway")  # another service's alert: not on this page
    firing(plane, "HighLatencyP95", "P2", "catalog", AlertState.PENDING)

    html = signed_in.get("/ui/services/catalog").text  # serve is 10 minutes old: 15 min
    assert "Over the last 15 min" in html and 'data-range="15m" aria-current="true"' in html
    found = charts(html)
    assert list(found) == ["errors", "requests", "latency"]
    assert "now 5%, highest 5%" in found["errors"]
    assert '<line class="threshold firing"' in found["errors"] and "HighErrorRate &gt; 1%" in found["errors"]
    assert found["errors"].count('class="threshold ') == 1
    assert "all now 20/s" in found["requests"] and "5xx now 1/s" in found["requests"]
    assert "p50 now 10 ms" in found["latency"] and ">p99<" in found["latency"]
    assert "HighLatencyP95 &gt; 500 ms (pending)" in found["latency"]
    assert ">before serve started</text>" in found["errors"]  # the 5 minutes before it started
    assert "metrics.window" not in html

    html = signed_in.get("/ui/services/catalog?range=24h").text
    assert "Over the last 24 h" in html and 'data-range="24h" aria-current="true"' in html
    assert "kept in memory for 1 h (metrics.window" in html
    assert "Latency, last 24 h" in html  # the checks' sparklines follow the range
    assert signed_in.get("/ui/services/catalog?range=2d").status_code == 422


def test_a_service_without_metrics_charts_its_checks_latency(
        signed_in: TestClient, plane: ControlPlane, clock: ManualClock) -> None:
    plane.started_at = clock.now() - timedelta(hours=2)
    for duration in (0.004, 0.006, 0.2):
        plane.history.record("gateway/http", ProbeResult(State.OK, "fine", duration))
        clock.advance(60)
    plane.history.record("gateway/http", ProbeResult(State.CRITICAL, "HTTP 503", 0.008))
    html = signed_in.get("/ui/services/gateway").text  # two hours old: an hour by default
    assert "Over the last 1 h" in html and "Not scraped: set <code>metrics_path</code>" in html
    found = charts(html)
    assert list(found) == ["checks"]
    assert "now 8 ms, highest 200 ms" in found["checks"]
    assert found["checks"].count('class="fail"') == 1 and "<polyline" in found["checks"]


def test_a_component_with_neither_metrics_nor_checks_says_there_is_nothing_to_chart(
        signed_in: TestClient) -> None:
    html = signed_in.get("/ui/services/sessions?range=6h").text
    assert charts(html) == {} and "It has no checks either, so there is nothing to chart." in html
