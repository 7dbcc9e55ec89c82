"""The alerting section exported for Prometheus and Alertmanager, checked by their own
tools (`promtool check rules`, `amtool check-config`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from opsplane.alerts.export import export, prometheus_duration, write
from opsplane.alerts.models import AlertingSettings

SETTINGS = AlertingSettings.model_validate({
    "evaluation_interval": "15s",
    "builtin_rules": {"enabled": False},
    "rules": [
        {"name": "HighErrorRate", "for": "5m", "severity": "P1", "labels": {"team": "checkout"},
         "expr": 'sum by (service) (rate(http_requests_total{code=~"5.."}[5m])) '
                 "/ sum by (service) (rate(http_requests_total[5m])) > 0.01",
         "annotations": {"summary": "{{ $labels.service }} fails {{ $value | humanizePercentage }}"},
         "runbook": "https://runbooks.example/high-error-rate"},
        {"name": "DatabaseDown", "expr": "pg_up == 0", "severity": "P0", "keep_firing_for": "90s"},
    ],
    "route": {
        "receiver": "email", "group_by": ["alertname", "service"], "repeat_interval": "4h",
        "routes": [
            {"matchers": ['severity="P0"'], "receiver": "pager", "group_wait": "10s", "continue": True},
            {"matchers": ['severity=~"P0|P1"'], "receiver": "slack"},
        ],
    },
    "receivers": {
        "email": {},
        "pager": {"webhook": {"url": "http://127.0.0.1:9/page", "bearer_token": "file:/run/secrets/pager"}},
        "slack": {"webhook": {"url": "http://127.0.0.1:9/slack", "bearer_token": "env:SLACK_TOKEN"},
                  "send_resolved": False},
    },
    "inhibit_rules": [{"source_matchers": ['severity="P0"'], "target_matchers": ['severity="P2"'],
                       "equal": ["service"]}],
    "maintenance_windows": {"patching": {"matchers": ['env="staging"'], "start": "02:00", "duration": "1h"}},
})
SHOP = {"orders": ["postgres"], "payments": ["postgres"], "gateway": ["orders"]}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (Debian packages prometheus and prometheus-alertmanager)")
    return found


def _check(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_promtool_and_amtool_accept_the_export(tmp_path: Path) -> None:
    rules_file, alertmanager_file = write(export(SETTINGS, depends_on=SHOP), tmp_path)
    rules = _check([_tool("promtool"), "check", "rules", str(rules_file)])
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 2 rules found" in rules.stdout
    config = _check([_tool("amtool"), "check-config", str(alertmanager_file)])
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_refuses_a_broken_expression_so_the_check_means_something(tmp_path: Path) -> None:
    broken = SETTINGS.model_copy(update={"rules": [SETTINGS.rules[0].model_copy(update={"expr": "sum("})]})
    (rules_file, _) = write(export(broken), tmp_path)
    assert _check([_tool("promtool"), "check", "rules", str(rules_file)]).returncode != 0


def test_rules_carry_severity_runbook_and_durations_as_prometheus_writes_them(tmp_path: Path) -> None:
    (group,) = export(SETTINGS).rules["groups"]
    errors, down = group["rules"]
    assert group["interval"] == "15s"
    assert errors["for"] == "5m" and errors["labels"] == {"team": "checkout", "severity": "P1"}
    assert errors["annotations"]["runbook_url"] == "https://runbooks.example/high-error-rate"
    assert "for" not in down and down["keep_firing_for"] == "1m30s"


def test_routes_receivers_and_dependency_inhibitions_are_exported(tmp_path: Path) -> None:
    exported = export(SETTINGS, depends_on=SHOP)
    route = exported.alertmanager["route"]
    assert route["receiver"] == "email" and route["group_by"] == ["alertname", "service"]
    assert route["routes"][0] == {"receiver": "pager", "matchers": ['severity="P0"'], "group_wait": "10s",
                                  "continue": True}
    receivers = {r["name"]: r for r in exported.alertmanager["receivers"]}
    assert receivers["email"] == {"name": "email"}
    pager = receivers["pager"]["webhook_configs"][0]
    assert pager["http_config"] == {"authorization": {"credentials_file": "/run/secrets/pager"}}
    assert receivers["slack"]["webhook_configs"][0]["send_resolved"] is False
    inhibit = exported.alertmanager["inhibit_rules"]
    assert {"source_matchers": ['service="postgres"', 'severity="P0"'],
            "target_matchers": ['service=~"gateway|orders|payments"'], "equal": ["env"]} in inhibit
    assert {"source_matchers": ['service="postgres"', 'severity="P2"'],
            "target_matchers": ['service=~"gateway|orders|payments"', 'severity=~"P2|P3"'],
            "equal": ["env"]} in inhibit
    assert any("SLACK_TOKEN" in note for note in exported.notes)
    assert any("patching" in note for note in exported.notes)
    written = yaml.safe_load(write(exported, tmp_path)[1].read_text())
    assert written == exported.alertmanager


@pytest.mark.parametrize(("seconds", "text"), [(90, "1m30s"), (0.25, "250ms"), (86400, "1d"),
                                                (3600 * 4, "4h"), (1.5, "1s500ms")])
def test_durations_are_written_in_whole_units(seconds: float, text: str) -> None:
    assert prometheus_duration(seconds) == text


def test_export_prometheus_command_writes_both_files_from_the_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from opsplane.alerts.cli import export_app

    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text(
        "platform: {name: shop}\n"
        "services: {orders: {depends_on: [postgres]}}\n"
        "databases: {postgres: {}}\n"
        "alerting:\n"
        "  builtin_rules: {enabled: false}\n"
        "  rules: [{name: DatabaseDown, expr: pg_up == 0, for: 1m, severity: P0}]\n"
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(export_app, ["prometheus", "out", "--json"])
    assert result.exit_code == 0, result.output
    rules_file, alertmanager_file = (Path(p) for p in yaml.safe_load(result.output)["files"])
    assert yaml.safe_load(rules_file.read_text())["groups"][0]["rules"][0]["alert"] == "DatabaseDown"
    inhibit = yaml.safe_load(alertmanager_file.read_text())["inhibit_rules"]
    assert [(r["source_matchers"], r["target_matchers"]) for r in inhibit] == [
        (['service="postgres"', 'severity="P0"'], ['service=~"orders"']),
        (['service="postgres"', 'severity="P1"'], ['service=~"orders"', 'severity=~"P1|P2|P3"']),
        (['service="postgres"', 'severity="P2"'], ['service=~"orders"', 'severity=~"P2|P3"']),
        (['service="postgres"', 'severity="P3"'], ['service=~"orders"', 'severity="P3"']),
    ]


UNIT_VALUES = [("ratio", 0.0534), ("percent", 99.5), ("seconds", 0.25), ("bytes", 4.2e9), ("count", 3.0),
               ("per_second", 12.5)]


def test_a_rules_unit_is_exported_as_an_annotation_and_its_value_reads_alike_in_prometheus(
    tmp_path: Path,
) -> None:
    # Prometheus prints {{ $value }} raw: the export spells it with the humanize function of
    # the rule's unit, and promtool's own rendering must be what opsplane's functions give.
    from opsplane.alerts.templates import for_prometheus, render

    settings = AlertingSettings.model_validate({
        "builtin_rules": {"enabled": False},
        "rules": [{"name": f"Is_{unit}", "expr": f"measured_{unit} > 0", "severity": "P2", "unit": unit,
                   "annotations": {"summary": "now {{ $value }}"}} for unit, _ in UNIT_VALUES]
                 + [{"name": "Plain", "expr": "measured_plain > 0", "severity": "P2",
                     "annotations": {"summary": "now {{ $value }}"}}],
    })
    rules_file, _ = write(export(settings), tmp_path)
    exported = {r["alert"]: r for r in yaml.safe_load(rules_file.read_text())["groups"][0]["rules"]}
    assert exported["Is_ratio"]["annotations"] == {"summary": "now {{ $value | humanizePercentage }}",
                                                   "unit": "ratio"}
    assert exported["Is_ratio"]["labels"] == {"severity": "P2"}  # the unit is no part of its identity
    assert exported["Plain"]["annotations"] == {"summary": "now {{ $value }}"}
    expected = {unit: render(for_prometheus("now {{ $value }}", unit), {}, value)
                for unit, value in UNIT_VALUES}
    assert expected == {"ratio": "now 5.34%", "percent": "now 99.5%", "seconds": "now 250ms",
                        "bytes": "now 3.912GiB", "count": "now 3", "per_second": "now 12.5/s"}
    suite = {"rule_files": [rules_file.name], "evaluation_interval": "15s", "tests": [{
        "interval": "15s",
        "input_series": [{"series": f"measured_{unit}", "values": f"{value!r}+0x10"}
                         for unit, value in UNIT_VALUES],
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": f"Is_{unit}", "exp_alerts": [{
                "exp_labels": {"severity": "P2"},
                "exp_annotations": {"summary": expected[unit], "unit": unit}}]}
            for unit, _ in UNIT_VALUES
        ],
    }]}
    tests_file = tmp_path / "tests.yml"
    tests_file.write_text(yaml.safe_dump(suite, sort_keys=False))
    ran = _check([_tool("promtool"), "test", "rules", str(tests_file)])
    assert ran.returncode == 0, ran.stdout + ran.stderr
