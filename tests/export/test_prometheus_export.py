"""`opsplane export prometheus`: the files it writes are accepted by Prometheus's `promtool check
rules` and Alertmanager's `amtool check-config` (the real Debian binaries), and say what the
inventory says."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from opsplane.cli import _register, app
from opsplane.config.loader import loads
from opsplane.errors import UsageError
from opsplane.export.prometheus import alertmanager_config, duration, rule_groups, write

INVENTORY = """
platform: {name: shop}
services:
  gateway: {port: 8200, depends_on: [orders]}
  orders: {port: 8202, depends_on: [postgres-main, payments]}
  payments: {port: 8203}
databases:
  postgres-main: {port: 5432}
alerting:
  evaluation_interval: 15s
  rules:
    - name: HighErrorRate
      expr: sum by (service) (rate(http_requests_total{status=~"5.."}[5m]))
            / sum by (service) (rate(http_requests_total[5m])) > 0.01
      for: 5m
      keep_firing_for: 1m
      severity: P1
      labels: {team: checkout}
      annotations:
        summary: "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests"
      runbook: https://runbooks.example/high-error-rate
    - name: DatabaseDown
      expr: pg_up == 0
      severity: P0
  route:
    receiver: default
    group_by: [alertname, service]
    routes:
      - matchers: ['severity=~"P0|P1"']
        receiver: pager
        group_wait: 10s
        continue: true
      - matchers: ['team="checkout"']
        receiver: checkout
        repeat_interval: 1h30m
  receivers:
    default: {}
    pager:
      webhook: {url: "http://127.0.0.1:9000/hook", bearer_token: "file:/run/secrets/pager-token"}
    checkout:
      webhook: {url: "http://127.0.0.1:9001/hook"}
      send_resolved: false
  inhibit_rules:
    - source_matchers: ['severity="P0"']
      target_matchers: ['severity=~"P2|P3"']
      equal: [service]
"""

needs_tools = pytest.mark.skipif(
    not (shutil.which("promtool") and shutil.which("amtool")),
    reason="promtool and amtool come with Debian's prometheus and prometheus-alertmanager "
           "(scripts/bootstrap.sh --test installs them)")


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Path]:
    rules, alertmanager = write(loads(INVENTORY, "opsplane.yaml"), tmp_path / "out")
    return rules, alertmanager


@needs_tools
def test_promtool_and_amtool_accept_the_files(exported) -> None:
    rules, alertmanager = exported
    checked = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 2 rules found" in checked.stdout
    # amtool reads credentials_file only when sending, so a path that does not exist here is fine
    checked = subprocess.run(["amtool", "check-config", str(alertmanager)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # one inhibit rule written in the inventory, three from depends_on
    assert " - 3 receivers" in checked.stdout and " - 4 inhibit rules" in checked.stdout


def test_rules_carry_for_labels_annotations_and_the_runbook() -> None:
    [group] = rule_groups(loads(INVENTORY, "opsplane.yaml").alerting)["groups"]
    high, down = group["rules"]
    assert group["interval"] == "15s"
    assert high["for"] == "5m" and high["keep_firing_for"] == "1m"
    assert high["labels"] == {"severity": "P1", "team": "checkout"}
    assert high["annotations"] == {
        "summary": "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests",
        "runbook_url": "https://runbooks.example/high-error-rate"}
    assert down == {"alert": "DatabaseDown", "expr": "pg_up == 0", "labels": {"severity": "P0"}}


def test_routes_receivers_and_inhibitions_follow_the_inventory() -> None:
    config = alertmanager_config(loads(INVENTORY, "opsplane.yaml"))
    route = config["route"]
    assert route["receiver"] == "default" and route["group_by"] == ["alertname", "service"]
    pager, checkout = route["routes"]
    assert pager == {"receiver": "pager", "matchers": ['severity=~"P0|P1"'], "group_wait": "10s",
                     "continue": True}
    assert checkout["repeat_interval"] == "1h30m"
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["default"] == {"name": "default"}
    [hook] = receivers["pager"]["webhook_configs"]
    assert hook["http_config"]["authorization"] == {"type": "Bearer",
                                                    "credentials_file": "/run/secrets/pager-token"}
    assert receivers["checkout"]["webhook_configs"][0]["send_resolved"] is False
    # the explicit rule, then depends_on: a down component mutes whatever depends on it
    explicit, *dependencies = config["inhibit_rules"]
    assert explicit["equal"] == ["service"]
    assert {r["source_matchers"][0]: r["target_matchers"][0] for r in dependencies} == {
        'service="orders"': 'service=~"gateway"',
        'service="payments"': 'service=~"gateway|orders"',
        'service="postgres-main"': 'service=~"gateway|orders"',
    }


def test_a_token_from_the_environment_cannot_be_exported(tmp_path: Path) -> None:
    inventory = loads(INVENTORY.replace("file:/run/secrets/pager-token", "env:PAGER_TOKEN"),
                      "opsplane.yaml")
    with pytest.raises(UsageError, match="pager.webhook.bearer_token is env:PAGER_TOKEN.*file:"):
        write(inventory, tmp_path)


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (0.5, "500ms"), (90, "1m30s"), (5400, "1h30m")])
def test_durations_read_as_prometheus_writes_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_the_command_writes_both_files(tmp_path: Path) -> None:
    source = tmp_path / "opsplane.yaml"
    source.write_text(INVENTORY)
    _register()
    result = CliRunner().invoke(app, ["-c", str(source), "export", "prometheus", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load((tmp_path / "out" / "alertmanager.yml").read_text())
    assert written["route"]["receiver"] == "default"
    assert (tmp_path / "out" / "rules" / "opsplane.rules.yml").read_text().startswith(
        "# Written by `opsplane export prometheus` from opsplane.yaml.")
