"""The built-in rules: the manual's tables, accepted and evaluated by Prometheus's own
promtool, with thresholds that can be overridden and rules that can be replaced."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from opsplane.alerts.export import export, write
from opsplane.alerts.models import AlertingSettings, Severity
from opsplane.alerts.pack import builtin_rules, effective_rules
from opsplane.alerts.templates import render
from opsplane.metrics.promql import parse


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


def test_the_pack_reproduces_the_manuals_named_alerts_and_levels() -> None:
    rules = {(r.name, r.severity) for r in builtin_rules(AlertingSettings().builtin_rules)}
    for named in [("DatabaseDown", Severity.P0), ("HighErrorRate", Severity.P1),
                  ("DiskSpaceLow", Severity.P2), ("HighLatencyP95", Severity.P2),
                  ("HighLatencyP99", Severity.P1),
                  ("RequestRateDrop", Severity.P0), ("LowPaymentSuccess", Severity.P1),
                  ("LowOrderCompletion", Severity.P2), ("LowSearchSuccess", Severity.P2),
                  ("LowGatewaySuccess", Severity.P1)]:
        assert named in rules
    for level in ("HighCpuUsage", "HighMemoryUsage", "HighDiskUsage", "HighDbPoolUsage", "HighRedisMemory"):
        assert {(level, Severity.P2), (level, Severity.P1)} <= rules
    error_rate = next(r for r in builtin_rules(AlertingSettings().builtin_rules) if r.name == "HighErrorRate")
    assert error_rate.for_ == 300 and error_rate.runbook == "high-error-rate"
    # notifications say how to run it, for the service the alert is about
    assert error_rate.annotations["runbook"] == \
        "opsplane runbook run high-error-rate --param service={{ $labels.service }}"
    # a rule without a shipped runbook links to a document, as before
    backups = next(r for r in builtin_rules(AlertingSettings().builtin_rules) if r.name == "BackupFailed")
    assert backups.runbook == "runbooks/backup-failed.md" and "runbook" not in backups.annotations


def test_a_service_the_runtime_gave_up_on_fires_at_once_p0_when_critical() -> None:
    rules = [r for r in builtin_rules(AlertingSettings().builtin_rules) if r.name == "ServiceNotRunning"]
    by_severity = {r.severity: r for r in rules}
    assert set(by_severity) == {Severity.P0, Severity.P1}
    assert 'criticality="critical"' in by_severity[Severity.P0].expr
    assert 'criticality!="critical"' in by_severity[Severity.P1].expr
    assert all(r.for_ in (None, 0) for r in rules)  # no `for` and no count of failures: it is certain
    settings = AlertingSettings.model_validate({"builtin_rules": {"for": "10m"}})
    assert all(r.for_ in (None, 0) for r in effective_rules(settings) if r.name == "ServiceNotRunning")


def test_thresholds_for_and_runbooks_can_be_overridden() -> None:
    settings = AlertingSettings.model_validate({"builtin_rules": {
        "thresholds": {"error_rate": "2%", "cpu_critical": "85%"}, "for": "2m",
        "runbook_base": "https://runbooks.example/"}})
    rules = {(r.name, r.severity): r for r in effective_rules(settings)}
    errors = rules[("HighErrorRate", Severity.P1)]
    assert errors.expr.endswith("> 0.02") and errors.for_ == 120
    assert errors.runbook == "https://runbooks.example/high-error-rate.md"
    assert "runbook" not in errors.annotations  # a team's own documents replace the shipped runbooks
    assert rules[("HighCpuUsage", Severity.P1)].expr.endswith("> 0.85")


def test_the_window_shortens_the_service_rules_and_leaves_the_business_rules_at_15m() -> None:
    default = {r.name: r.expr for r in builtin_rules(AlertingSettings().builtin_rules)}
    assert "[5m]" in default["HighErrorRate"] and "[20s]" not in default["HighErrorRate"]
    rules = {r.name: r.expr for r in builtin_rules(
        AlertingSettings.model_validate({"builtin_rules": {"window": "20s"}}).builtin_rules)}
    for name in ("HighErrorRate", "HighLatencyP95", "HighLatencyP99", "LowGatewaySuccess", "RequestRateDrop"):
        assert "[20s]" in rules[name] and "[5m]" not in rules[name], rules[name]
    assert rules["RequestRateDrop"].endswith("(rate(http_requests_total[20s] offset 15m))")
    for name in ("LowOrderCompletion", "LowPaymentSuccess", "LowSearchSuccess"):
        assert rules[name] == default[name] and "[15m]" in rules[name]
    assert rules["HighCpuUsage"] == default["HighCpuUsage"]  # a machine's CPU keeps its 5m
    odd = builtin_rules(AlertingSettings.model_validate({"builtin_rules": {"window": 90}}).builtin_rules)
    assert "[1m30s]" in next(r.expr for r in odd if r.name == "HighErrorRate")  # whole units, as PromQL needs
    for rule in odd:
        parse(rule.expr)  # and opsplane's own engine runs every one of them
    with pytest.raises(ValueError, match="at most 15m"):
        AlertingSettings.model_validate({"builtin_rules": {"window": "20m"}})


def test_a_rule_of_the_same_name_and_severity_replaces_the_built_in_one() -> None:
    settings = AlertingSettings.model_validate({"rules": [
        {"name": "HighErrorRate", "expr": "my_errors > 0", "severity": "P1"}]})
    errors = [r for r in effective_rules(settings) if r.name == "HighErrorRate"]
    assert [r.expr for r in errors] == ["my_errors > 0"]
    assert effective_rules(AlertingSettings.model_validate({"builtin_rules": {"enabled": False}})) == []


@pytest.mark.parametrize(("pack", "window"), [({}, "[5m]"), ({"window": "20s", "for": "10s"}, "[20s]"),
                                             ({"window": 0.25}, "[250ms]")])
def test_promtool_accepts_every_built_in_rule(tmp_path: Path, pack: dict[str, object], window: str) -> None:
    settings = AlertingSettings.model_validate({"builtin_rules": pack})
    rules_file, _ = write(export(settings), tmp_path)
    checked = subprocess.run([_promtool(), "check", "rules", str(rules_file)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(effective_rules(settings))} rules found" in checked.stdout
    exported = yaml.safe_load(rules_file.read_text())["groups"][0]["rules"]
    errors = next(r for r in exported if r["alert"] == "HighErrorRate")
    assert window in errors["expr"]


ORDERS = 'service="orders",env="production"'
PAYMENTS = 'service="payments",env="production"'


def test_prometheus_fires_the_error_and_payment_rules_with_opsplanes_annotations(tmp_path: Path) -> None:
    rules_file, _ = write(export(AlertingSettings()), tmp_path)
    error_summary = render(
        "{{ $labels.service }} answers {{ $value | humanizePercentage }} of requests with 5xx",
        {"service": "orders"}, 5 / 105,
    )
    payment_summary = render("only {{ $value | humanizePercentage }} of charges go through without error",
                             {}, 0.97)
    suite = {
        "rule_files": [rules_file.name],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": [
                {"series": f'http_requests_total{{{ORDERS},status="200"}}', "values": "0+100x120"},
                {"series": f'http_requests_total{{{ORDERS},status="500"}}', "values": "0+5x120"},
                {"series": f'payments_total{{{PAYMENTS},status="succeeded"}}', "values": "0+97x120"},
                {"series": f'payments_total{{{PAYMENTS},status="error"}}', "values": "0+3x120"},
            ],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "HighErrorRate", "exp_alerts": []},
                {"eval_time": "10m", "alertname": "HighErrorRate", "exp_alerts": [{
                    "exp_labels": {"severity": "P1", "service": "orders", "env": "production"},
                    "exp_annotations": {"summary": error_summary, "unit": "ratio",
                                        "runbook": "opsplane runbook run high-error-rate "
                                                   "--param service=orders"},
                }]},
                {"eval_time": "20m", "alertname": "LowPaymentSuccess", "exp_alerts": [{
                    "exp_labels": {"severity": "P1", "service": "payments", "env": "production"},
                    "exp_annotations": {"summary": payment_summary, "unit": "ratio",
                                        "runbook_url": "runbooks/low-payment-success.md"},
                }]},
                {"eval_time": "20m", "alertname": "RequestRateDrop", "exp_alerts": []},
            ],
        }],
    }
    tests_file = tmp_path / "tests.yml"
    tests_file.write_text(yaml.safe_dump(suite, sort_keys=False))
    ran = subprocess.run([_promtool(), "test", "rules", str(tests_file)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert error_summary == "orders answers 4.762% of requests with 5xx"
