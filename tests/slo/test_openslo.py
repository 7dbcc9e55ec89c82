"""OpenSLO v1: the inventory's SLOs written out and read back unchanged, a hand-written file read
into SLOs and written out stably, what opsplane cannot compute refused with its document, field
and line, and the `openslo` commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import opsplane.config.models  # noqa: F401 - loads the inventory's models before the SLO ones
from opsplane.config import load as load_inventory
from opsplane.slo.models import Slo
from opsplane.slo.openslo import OpenSloError, dump, load, to_openslo
from opsplane.slo.openslo_cli import app

GATEWAY = 'http_requests_total{service="gateway"}'
GATEWAY_5XX = 'http_requests_total{service="gateway",status=~"5.."}'


def slo(**fields: Any) -> Slo:
    values: dict[str, Any] = {"service": "gateway", "objective": "99.9%",
                              "sli": {"events": {"bad": GATEWAY_5XX, "total": GATEWAY}}}
    return Slo.model_validate({**values, **fields})


INVENTORY_SLOS = {
    "gateway-availability": slo(description="Gateway requests answered without a 5xx"),
    "gateway-good": slo(objective="99.5%", window="28d",
                        sli={"events": {"good": 'http_requests_total{service="gateway",status!~"5.."}',
                                        "total": GATEWAY}}),
    "gateway-latency": slo(objective="99%", sli={"latency": {
        "histogram": 'http_request_duration_seconds{service="gateway"}', "threshold": "150ms"}}),
    "search-latency-1s": slo(service="search",
                             sli={"latency": {"histogram": "search_seconds", "threshold": "1s"}},
                             calendar={"unit": "quarter", "timezone": "Europe/Berlin"}),
    "orders_monthly.slices": slo(service="orders", calendar={"unit": "month"}, budgeting="timeslices",
                                 timeslice="5m", timeslice_target="95%"),
    "orders-slices-default-target": slo(service="orders", budgeting="timeslices", window="7d"),
    "db-checks": slo(service="postgres", objective="99.5%", sli={"checks": {}}, deploy_gate=False),
    "cache-checks": slo(service="cache", sli={"checks": {"component": "redis"}},
                        alerts={"page_severity": "P0", "min_events": 20, "ticket": False,
                                "runbook": "runbooks/cache.md"}),
}


def test_the_inventorys_slos_come_back_unchanged_from_openslo() -> None:
    text = dump(to_openslo(INVENTORY_SLOS))
    imported = load(text)
    assert imported.slos == INVENTORY_SLOS
    assert list(imported.slos) == list(INVENTORY_SLOS)
    assert imported.notes == []


def test_the_documents_are_openslo_v1_with_prometheus_queries() -> None:
    documents = to_openslo(INVENTORY_SLOS)
    assert all(d["apiVersion"] == "openslo/v1" for d in documents)
    services = [d["metadata"]["name"] for d in documents if d["kind"] == "Service"]
    assert services == ["cache", "gateway", "orders", "postgres", "search"]
    slos = {d["metadata"]["name"]: d for d in documents if d["kind"] == "SLO"}
    availability = slos["gateway-availability"]["spec"]
    assert availability["service"] == "gateway"
    assert availability["budgetingMethod"] == "Occurrences"
    assert availability["objectives"] == [{"target": 0.999}]
    assert availability["timeWindow"] == [{"duration": "30d", "isRolling": True}]
    ratio = availability["indicator"]["spec"]["ratioMetric"]
    assert ratio["counter"] is True
    assert ratio["bad"] == {"metricSource": {"type": "Prometheus", "spec": {"query": GATEWAY_5XX}}}
    assert ratio["total"]["metricSource"]["spec"]["query"] == GATEWAY
    latency = slos["gateway-latency"]["spec"]["indicator"]["spec"]["ratioMetric"]
    assert latency["good"]["metricSource"]["spec"]["query"] == \
        'http_request_duration_seconds_bucket{service="gateway",le="0.15"}'
    assert latency["total"]["metricSource"]["spec"]["query"] == \
        'http_request_duration_seconds_count{service="gateway"}'
    # Go clients write le="1", Python ones le="1.0": a whole-second bucket matches either
    whole = slos["search-latency-1s"]["spec"]
    assert whole["indicator"]["spec"]["ratioMetric"]["good"]["metricSource"]["spec"]["query"] == \
        'search_seconds_bucket{le=~"1(\\\\.0)?"}'
    assert whole["timeWindow"] == [{"duration": "1Q", "calendar": {
        "startTime": "2024-01-01 00:00:00", "timeZone": "Europe/Berlin"}, "isRolling": False}]
    # OpenSLO names are RFC 1123 labels; the inventory's name travels in an annotation
    sliced = slos["orders-monthly-slices"]
    assert sliced["metadata"]["annotations"]["opsplane/name"] == "orders_monthly.slices"
    assert sliced["spec"]["budgetingMethod"] == "Timeslices"
    assert sliced["spec"]["objectives"] == [
        {"target": 0.999, "timeSliceTarget": 0.95, "timeSliceWindow": "5m"}]
    assert slos["orders-slices-default-target"]["spec"]["objectives"][0]["timeSliceTarget"] == 0.999
    checks = slos["cache-checks"]
    assert checks["spec"]["indicator"]["spec"]["ratioMetric"]["total"]["metricSource"] == {
        "type": "opsplane", "spec": {"source": "checks", "component": "redis"}}
    assert json.loads(checks["metadata"]["annotations"]["opsplane/alerts"]) == {
        "page_severity": "P0", "min_events": 20, "ticket": False, "runbook": "runbooks/cache.md"}
    assert slos["db-checks"]["metadata"]["annotations"] == {"opsplane/deploy-gate": "false"}


HAND_WRITTEN = """\
apiVersion: openslo/v1
kind: DataSource
metadata:
  name: prometheus-datasource
spec:
  type: Prometheus
  connectionDetails:
    url: http://prometheus:9090
---
apiVersion: openslo/v1
kind: Service
metadata:
  name: web-shop
  displayName: Web shop
spec:
  description: The storefront
---
apiVersion: openslo/v1
kind: SLI
metadata:
  name: checkout-errors
spec:
  ratioMetric:
    counter: true
    bad:
      metricSource:
        metricSourceRef: prometheus-datasource
        spec:
          query: http_requests_total{service="checkout", code=~"5.."}
    total:
      metricSource:
        metricSourceRef: prometheus-datasource
        spec:
          query: http_requests_total{service="checkout"}
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-availability
  displayName: Checkout availability
spec:
  description: Checkouts answered without a server error
  service: web-shop
  indicatorRef: checkout-errors
  timeWindow:
    - duration: 4w
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: Good
      targetPercent: 99.95
  alertPolicies:
    - alertPolicyRef: fast-burn
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: search-slo
  displayName: Searching time
spec:
  description: Searches answered within 500 ms
  service: web-shop
  indicator:
    metadata:
      name: search-latency
    spec:
      thresholdMetric:
        metricSource:
          type: Prometheus
          spec:
            query: search_duration_seconds_bucket{service="search"}
  timeWindow:
    - duration: 2w
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: Good experience
      op: lte
      value: 0.5
      target: 0.99
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: main-page
spec:
  service: web-shop
  indicator:
    metadata:
      name: main-page-codes
    spec:
      ratioMetric:
        good:
          metricSource:
            type: prometheus
            spec:
              query: nginx_requests_total{page="main", code=~"2..|3.."}
        total:
          metricSource:
            type: prometheus
            spec:
              query: nginx_requests_total{page="main"}
  timeWindow:
    - duration: 1M
      isRolling: false
      calendar:
        startTime: 2022-01-01 00:00:00
        timeZone: America/New_York
  budgetingMethod: Timeslices
  objectives:
    - displayName: Internal objective
      op: gt
      target: 0.995
      timeSliceTarget: 0.99
      timeSliceWindow: 1m
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata:
  name: fast-burn
spec:
  conditions: []
  notificationTargets: []
"""


def test_a_hand_written_file_reads_into_slos_and_writes_back_stably() -> None:
    imported = load(HAND_WRITTEN)
    assert list(imported.slos) == ["checkout-availability", "search-slo", "main-page"]
    checkout = imported.slos["checkout-availability"]
    assert checkout.objective == 0.9995 and checkout.window == 28 * 86400
    assert checkout.description == "Checkouts answered without a server error"
    assert checkout.sli.events is not None
    assert checkout.sli.events.bad == 'http_requests_total{service="checkout", code=~"5.."}'
    search = imported.slos["search-slo"]
    assert search.sli.latency is not None
    assert search.sli.latency.histogram == 'search_duration_seconds{service="search"}'
    assert search.sli.latency.threshold == 0.5 and search.window == 14 * 86400
    main = imported.slos["main-page"]
    assert main.calendar is not None and (main.calendar.unit, main.calendar.timezone) == (
        "month", "America/New_York")
    assert (main.budgeting, main.timeslice, main.timeslice_target) == ("timeslices", 60, 0.99)
    assert imported.notes == ["document 7: AlertPolicy fast-burn is not imported: opsplane pages on burn "
                              "rates it derives from each SLO (the SLO's alerts:)"]
    written = dump(to_openslo(imported.slos))
    again = load(written)
    assert again.slos == imported.slos
    assert dump(to_openslo(again.slos)) == written


def _refusal(text: str) -> str:
    with pytest.raises(OpenSloError) as raised:
        load(text, file="slos.yaml")
    assert raised.value.exit_code == 3
    return str(raised.value)


def _replace(old: str, new: str) -> str:
    assert old in HAND_WRITTEN
    return HAND_WRITTEN.replace(old, new, 1)


@pytest.mark.parametrize(("text", "where", "says"), [
    (_replace("  type: Prometheus\n  connectionDetails", "  type: Datadog\n  connectionDetails"),
     "slos.yaml:26: document 3, spec.ratioMetric.bad.metricSource.type:",
     "metric source 'Datadog' (of the DataSource prometheus-datasource): opsplane reads Prometheus"),
    (_replace("query: search_duration_seconds_bucket{service=\"search\"}", "query: search_latency_p99"),
     "slos.yaml:71: document 5, spec.indicator.spec.thresholdMetric.metricSource.spec.query:",
     "a threshold metric is compared value by value"),
    (_replace("      targetPercent: 99.95\n", "      targetPercent: 99.95\n    - target: 0.99\n"),
     "slos.yaml:49: document 4, spec.objectives:", "2 objectives: opsplane keeps one per SLO"),
    (_replace("budgetingMethod: Timeslices", "budgetingMethod: RatioTimeslices"),
     "slos.yaml:109: document 6, spec.budgetingMethod:", "RatioTimeslices averages the slices' ratios"),
    (_replace("duration: 4w", "duration: 1M"),
     "slos.yaml:46: document 4, spec.timeWindow[0].duration:", "a rolling window of 1M has no fixed length"),
    (_replace("startTime: 2022-01-01 00:00:00", "startTime: 2022-01-15 00:00:00"),
     "slos.yaml:107: document 6, spec.timeWindow[0].calendar.startTime:",
     "opsplane's calendar windows start at midnight on the first day of a month"),
    (_replace('query: nginx_requests_total{page="main"}', 'query: sum(rate(nginx_requests_total[5m]))'),
     "slos.yaml:102: document 6, spec.indicator.spec.ratioMetric.total.metricSource.spec.query:",
     "is an expression: opsplane takes a counter's selector"),
    (_replace("ratioMetric:\n    counter: true", "ratioMetric:\n    counter: false"),
     "slos.yaml:24: document 3, spec.ratioMetric.counter:",
     "a gauge that goes up and down cannot be turned into events"),
    (_replace("apiVersion: openslo/v1\nkind: Service", "apiVersion: openslo/v1alpha\nkind: Service"),
     "slos.yaml:10: document 2, apiVersion:", "opsplane reads openslo/v1, not 'openslo/v1alpha'"),
])
def test_what_opsplane_cannot_compute_is_refused_where_it_is(text: str, where: str, says: str) -> None:
    message = _refusal(text)
    assert where in message and says in message, message


def test_every_refusal_of_a_file_is_listed_at_once() -> None:
    text = _replace("budgetingMethod: Timeslices", "budgetingMethod: RatioTimeslices").replace(
        "  type: Prometheus\n  connectionDetails", "  type: CloudWatch\n  connectionDetails")
    message = _refusal(text)
    assert message.startswith("2 problems in the OpenSLO file")
    assert "document 3" in message and "document 6" in message


def test_a_precomputed_ratio_is_refused() -> None:
    text = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: raw}
spec:
  service: web
  indicator:
    metadata: {name: raw}
    spec:
      ratioMetric:
        rawType: success
        raw:
          metricSource: {type: Prometheus, spec: {query: availability_ratio}}
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
"""
    message = _refusal(text)
    assert "slos.yaml:11: document 1, spec.indicator.spec.ratioMetric.raw: a precomputed ratio" in message


# --- the commands ---------------------------------------------------------------------------------


def _inventory(tmp_path: Path, slos: dict[str, Any]) -> Path:
    path = tmp_path / "opsplane.yaml"
    path.write_text(yaml.safe_dump({"platform": {"name": "shop"},
                                    "services": {"gateway": {"port": 8000, "metrics_path": "/metrics"},
                                                 "web-shop": {"port": 8001, "metrics_path": "/metrics"}},
                                    "slos": slos}, sort_keys=False))
    return path


def test_export_writes_the_inventorys_slos_and_import_gives_back_a_section_that_loads(tmp_path: Path) -> None:
    config = _inventory(tmp_path, {
        "gateway-availability": {"service": "gateway", "objective": "99.9%", "window": "28d",
                                 "sli": {"events": {"bad": GATEWAY_5XX, "total": GATEWAY}},
                                 "alerts": {"min_events": 10}},
        "gateway-latency": {"service": "gateway", "objective": "99%", "budgeting": "timeslices",
                            "timeslice": "5m", "sli": {"latency": {
                                "histogram": 'http_request_duration_seconds{service="gateway"}',
                                "threshold": "300ms"}}},
    })
    runner = CliRunner()
    shown = runner.invoke(app, ["export"], obj={"config": config})
    assert shown.exit_code == 0, shown.output
    assert [d["kind"] for d in yaml.safe_load_all(shown.stdout)] == ["Service", "SLO", "SLO"]
    written = tmp_path / "slos.openslo.yaml"
    saved = runner.invoke(app, ["export", "--output", str(written)], obj={"config": config})
    assert saved.exit_code == 0 and written.read_text() == shown.stdout

    imported = runner.invoke(app, ["import", str(written)])
    assert imported.exit_code == 0, imported.output
    section = yaml.safe_load(imported.stdout)
    assert section["slos"]["gateway-availability"]["window"] == "28d"
    (tmp_path / "pasted").mkdir()
    pasted = _inventory(tmp_path / "pasted", section["slos"])
    assert load_inventory(pasted).slos == load_inventory(config).slos

    as_json = runner.invoke(app, ["import", str(written), "--json"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == {"slos": section["slos"], "notes": []}


def test_import_of_a_file_opsplane_cannot_express_exits_3_naming_each_place(tmp_path: Path) -> None:
    bad = tmp_path / "slos.yaml"
    bad.write_text(_replace("budgetingMethod: Timeslices", "budgetingMethod: RatioTimeslices"))
    refused = CliRunner().invoke(app, ["import", str(bad)])
    assert refused.exit_code == 3
    assert f"{bad}:109: document 6, spec.budgetingMethod: RatioTimeslices" in refused.stderr
    assert refused.stdout == ""
    notes = CliRunner().invoke(app, ["import", str(tmp_path / "absent.yaml")])
    assert notes.exit_code == 3 and "cannot read" in notes.stderr
