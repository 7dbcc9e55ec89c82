"""The SLOs' Prometheus rules: named as documented, accepted by promtool, firing in Prometheus's
own rule evaluation (promtool test rules) and in a real Prometheus over backfilled samples,
where opsplane's PromQL engine gives the same values and the same firing SLOs."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import opsplane.config.models  # noqa: F401 - loads the inventory's models before the SLO ones
from opsplane.alerts.export import export, write
from opsplane.alerts.models import AlertingSettings
from opsplane.drivers.sandbox.prometheus import TemporaryPrometheus, openmetrics_text
from opsplane.metrics.promql import InstantVector, MemorySource, instant
from opsplane.slo.models import Slo
from opsplane.slo.prometheus_rules import FAST_BURN, SLOW_BURN, slo_rule_groups
from tests.support.polling import wait_for

CHECKOUT = 'http_requests_total{service="checkout"}'
CHECKOUT_5XX = 'http_requests_total{service="checkout",status="500"}'


def slo(**fields: Any) -> Slo:
    values: dict[str, Any] = {"service": "checkout", "objective": "99.9%",
                              "sli": {"events": {"bad": CHECKOUT_5XX, "total": CHECKOUT}}}
    return Slo.model_validate({**values, **fields})


SLOS = {
    "checkout": slo(alerts={"runbook": "runbooks/checkout-slo.md"}),
    "search-latency": slo(service="search", objective="99%", sli={"latency": {
        "histogram": 'search_duration_seconds{service="search"}', "threshold": "1s"}}),
    "quiet": slo(service="quiet", alerts={"min_events": 1000}, sli={"events": {
        "good": 'jobs_total{service="quiet",result="ok"}', "total": 'jobs_total{service="quiet"}'}}),
    "orders-slices": slo(service="orders", budgeting="timeslices", timeslice="1m", timeslice_target="95%",
                         calendar={"unit": "month"}, alerts={"min_events": 5},
                         sli={"events": {"bad": 'orders_total{status="failed"}', "total": "orders_total"}}),
    "db": slo(service="postgres", sli={"checks": {}}),
}


def _promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


def _rules(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule.get("record") or rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_each_slo_records_its_windows_budget_and_burn_alerts_under_sloth_like_names() -> None:
    exported = slo_rule_groups(SLOS)
    names = [group["name"] for group in exported.groups]
    assert names[:4] == ["opsplane-slo-checkout-sli", "opsplane-slo-checkout-meta",
                         "opsplane-slo-checkout-alerts", "opsplane-slo-search-latency-sli"]
    assert "opsplane-slo-orders-slices-slices" in names and not any("-db-" in name for name in names)
    assert exported.notes == ["slo db: its SLI is opsplane's health-check results, which Prometheus does not "
                              "have; opsplane alone computes it"]
    checkout = _rules(exported.groups[:3])
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        labels = checkout[f"slo:sli_error:ratio_rate{window}"]["labels"]
        assert labels == {"slo": "checkout", "service": "checkout"}
        assert checkout[f"slo:sli_events:count{window}"]["expr"] == f"sum(increase({CHECKOUT}[{window}]))"
    assert checkout["slo:sli_error:ratio_rate30d"]["expr"] == \
        'avg_over_time(slo:sli_error:ratio_rate5m{slo="checkout"}[30d])'
    budget = {"slo:objective:ratio", "slo:error_budget:ratio", "slo:period_error_budget_remaining:ratio"}
    assert budget <= set(checkout)
    page, ticket = checkout[FAST_BURN], checkout[SLOW_BURN]
    assert page["labels"] == {"severity": "P1", "slo": "checkout", "service": "checkout"}
    assert ticket["labels"]["severity"] == "P3" and "for" not in page
    assert 'slo:sli_error:ratio_rate1h{slo="checkout"} / 0.001 > 14.4' in page["expr"]
    assert 'slo:sli_events:count6h{slo="checkout"} >= 100' in page["expr"]
    assert page["annotations"]["runbook_url"] == "runbooks/checkout-slo.md"
    latency = _rules(exported.groups[3:6])["slo:sli_error:ratio_rate5m"]["expr"]
    assert 'search_duration_seconds_bucket{service="search",le=~"1(\\\\.0)?"}[5m]' in latency
    calendar = _rules([g for g in exported.groups if g["name"].startswith("opsplane-slo-orders")])
    assert "slo:sli_error:ratio_rate30d" not in calendar  # a calendar budget is opsplane's to count


def test_opsplane_export_prometheus_adds_the_slo_groups_and_promtool_accepts_them(tmp_path: Path) -> None:
    exported = export(AlertingSettings(), slos=SLOS)
    assert exported.rules["groups"][0]["name"] == "opsplane"
    assert exported.notes[-1].startswith("slo db:")
    rules_file, _ = write(exported, tmp_path)
    checked = subprocess.run([_promtool(), "check", "rules", str(rules_file)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    count = sum(len(group["rules"]) for group in exported.rules["groups"])
    assert f"SUCCESS: {count} rules found" in checked.stdout


def _series(name: str, values: str) -> dict[str, str]:
    return {"series": name, "values": values}


def test_prometheus_pages_on_a_fast_burn_tickets_a_slow_one_and_waits_for_enough_events(
    tmp_path: Path,
) -> None:
    """promtool's rule tests run Prometheus's own rule evaluation over a timeline of samples."""
    rules_file, _ = write(export(AlertingSettings.model_validate({"builtin_rules": {"enabled": False}}),
                                 slos=SLOS), tmp_path)
    page_labels = {"severity": "P1", "slo": "checkout", "service": "checkout"}
    suite = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                # checkout: 2% of requests fail, 20 times its 0.1% budget
                _series(CHECKOUT.replace("}", ',status="200"}'), "0+980x200"),
                _series(CHECKOUT_5XX, "0+20x200"),
                # search: 0.5% slower than a second, half its 1% budget; Go spells the bucket le="1"
                _series('search_duration_seconds_bucket{service="search",le="1"}', "0+995x200"),
                _series('search_duration_seconds_bucket{service="search",le="+Inf"}', "0+1000x200"),
                _series('search_duration_seconds_count{service="search"}', "0+1000x200"),
                # quiet: half of its jobs fail, but 20 jobs an hour is below its min_events of 1000
                _series('jobs_total{service="quiet",result="ok"}', "0+1x200"),
                _series('jobs_total{service="quiet",result="error"}', "0+1x200"),
                # orders: every minute's slice fails 10% of orders, under its 95% slice target
                _series('orders_total{status="ok"}', "0+9x200"),
                _series('orders_total{status="failed"}', "0+1x200"),
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": FAST_BURN, "exp_alerts": [
                    {"exp_labels": page_labels, "exp_annotations": _annotations(page_labels, 20.0, "fast")},
                    {"exp_labels": {"severity": "P1", "slo": "orders-slices", "service": "orders"},
                     "exp_annotations": _annotations({"slo": "orders-slices", "service": "orders"}, 1000.0,
                                                     "fast")},
                ]},
                {"eval_time": "3h", "alertname": SLOW_BURN, "exp_alerts": [
                    {"exp_labels": {**page_labels, "severity": "P3"},
                     "exp_annotations": _annotations(page_labels, 20.0, "slow")},
                    {"exp_labels": {"severity": "P3", "slo": "orders-slices", "service": "orders"},
                     "exp_annotations": _annotations({"slo": "orders-slices", "service": "orders"}, 1000.0,
                                                     "slow")},
                ]},
            ],
            "promql_expr_test": [
                # 0.5% in basis points: 1 - 0.995 is not exactly 0.005 in floating point
                {"expr": 'round(slo:sli_error:ratio_rate1h{slo="search-latency"} * 10000)', "eval_time": "2h",
                 "exp_samples": [{"labels": '{slo="search-latency",service="search"}', "value": 50}]},
                {"expr": 'slo:sli_error:ratio_rate1h{slo="quiet"}', "eval_time": "2h",
                 "exp_samples": [{"labels": 'slo:sli_error:ratio_rate1h{slo="quiet",service="quiet"}',
                                  "value": 0.5}]},
            ],
        }],
    }
    tests_file = tmp_path / "tests.yml"
    tests_file.write_text(yaml.safe_dump(suite, sort_keys=False))
    ran = subprocess.run([_promtool(), "test", "rules", str(tests_file)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr


def _annotations(labels: dict[str, str], burn: float, kind: str) -> dict[str, str]:
    chosen = SLOS[labels["slo"]]
    shown = {20.0: "20", 1000.0: "1k"}[burn]  # as Prometheus's humanize writes them
    annotations = {
        "summary": f"SLO {labels['slo']} ({labels['service']}): the error budget burns {shown} times as fast "
                   f"as {chosen.objective * 100:g}% over the window allows",
        "description": f"A {kind} burn of the error budget of {labels['slo']}.",
    }
    if chosen.alerts.runbook:
        annotations["runbook_url"] = chosen.alerts.runbook
    return annotations


# --- a real Prometheus, and opsplane's engine beside it --------------------------------------------

STEP = 15.0


def _live_series(end: float) -> list[tuple[tuple[tuple[str, str], ...], list[tuple[float, float]]]]:
    """Two hours of samples every 15 s up to `end`, each counter a fixed multiple of the step,
    so that every window's error ratio is the same at any instant."""
    times = [end - STEP * k for k in range(480, -1, -1)]
    per_step = {
        (("__name__", "http_requests_total"), ("service", "checkout"), ("status", "200")): 90.0,
        (("__name__", "http_requests_total"), ("service", "checkout"), ("status", "500")): 10.0,
        (("__name__", "search_duration_seconds_bucket"), ("le", "1.0"), ("service", "search")): 999.0,
        (("__name__", "search_duration_seconds_count"), ("service", "search")): 1000.0,
        (("__name__", "jobs_total"), ("result", "ok"), ("service", "quiet")): 1.0,
        (("__name__", "jobs_total"), ("result", "error"), ("service", "quiet")): 1.0,
    }
    return [(labels, [(t, rate * k) for k, t in enumerate(times)]) for labels, rate in per_step.items()]


def _values(result: Any) -> dict[tuple[tuple[str, str], ...], float]:
    if isinstance(result, dict):  # Prometheus's answer
        return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in result["result"]}
    assert isinstance(result, InstantVector)
    return {tuple(sorted(labels)): value for labels, value in result.samples}


def _same(a: dict[Any, float], b: dict[Any, float]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) or math.isclose(a[k], b[k], rel_tol=1e-9) for k in a)


@pytest.mark.slow
def test_a_real_prometheus_pages_on_the_fast_burn_and_opsplanes_engine_agrees(tmp_path: Path) -> None:
    live = {name: SLOS[name] for name in ("checkout", "search-latency", "quiet")}
    groups = slo_rule_groups(live).groups
    end = math.floor(time.time()) - 5.0
    series = _live_series(end)
    prometheus = TemporaryPrometheus(tmp_path, rules={"groups": groups})
    prometheus.import_openmetrics(openmetrics_text(series))
    with prometheus:
        def firing() -> set[tuple[str, str]]:
            answer = _values(prometheus.query('ALERTS{alertstate="firing"}', time.time()))
            return {(dict(labels)["alertname"], dict(labels)["slo"]) for labels in answer}

        # the two alerts' groups run on their own; wait until both have
        alerts = wait_for(lambda: (lambda now: now if len(now) >= 2 else None)(firing()),
                          "the burn alerts to fire in Prometheus", timeout=60)
        # a burn of 100 is fast and slow at once; search is within budget, quiet has too few events
        assert alerts == {(FAST_BURN, "checkout"), (SLOW_BURN, "checkout")}
        every_rule = [rule for group in groups for rule in group["rules"]]
        now = time.time()
        burns = {id(rule): _values(prometheus.query(rule["expr"], now))
                 for rule in every_rule if "alert" in rule}

        # opsplane's engine over the same samples: each recording rule at the last sample's
        # instant, then the alert over the raw samples and what was recorded
        at = end + 1.0
        source = MemorySource(series)
        major = prometheus.major_version()
        recorded = [rule for rule in every_rule if "record" in rule]
        assert len(recorded) == 3 * 21  # 7 windows x (ratio, events), 3 budget figures, 4 of the 30 days
        for rule in recorded:
            # Prometheus has recorded series only since it started: what reads them is asked at
            # `now`, which the fixed ratios make no different from `at`
            reads_recorded = "slo:" in rule["expr"]
            theirs = _values(prometheus.query(rule["expr"], now if reads_recorded else at))
            ours = _values(instant(rule["expr"], source, at, prometheus=major))
            assert _same(theirs, ours), (rule["record"], rule["labels"], theirs, ours)
            for labels, value in ours.items():
                source.add({**dict(labels), **rule["labels"], "__name__": rule["record"]}, [(at, value)])
        for rule in every_rule:
            if "alert" in rule:
                ours = _values(instant(rule["expr"], source, at, prometheus=major))
                theirs = burns[id(rule)]
                assert _same(ours, theirs), (rule["alert"], rule["labels"]["slo"], ours, theirs)
                checkout = {(("service", "checkout"), ("slo", "checkout")): pytest.approx(100.0)}
                # 10% of errors on a 0.1% budget
                assert ours == (checkout if rule["labels"]["slo"] == "checkout" else {})
