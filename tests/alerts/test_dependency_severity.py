"""A dependency's alert mutes a dependent's alert only when it is at least as severe, unless
`inhibit_dependents_more_severe` widens that: a P3 disk warning on the database must never
hide a P0 of the service that needs it. Whole cycles over a real store and a real webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opsplane.alerts.export import export
from opsplane.alerts.flows import Alerting, CycleReport, dependencies
from opsplane.alerts.inhibition import inhibitions
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.state import Sample
from opsplane.clock import ManualClock
from opsplane.config import loads
from opsplane.config.cli import app as config_app
from opsplane.store import Store
from tests.alerts.factories import SHOP_INVENTORY, T0, alert
from tests.alerts.webhook import WebhookServer

DATABASE = {"service": "postgres", "env": "production"}
ORDERS = {"service": "orders", "env": "production"}


def _settings(url: str, source: str, target: str, **extra: Any) -> AlertingSettings:
    return AlertingSettings.model_validate({
        "builtin_rules": {"enabled": False},
        "rules": [
            {"name": "DatabaseTrouble", "expr": "database_trouble", "severity": source},
            {"name": "OrdersTrouble", "expr": "orders_trouble", "severity": target},
        ],
        "route": {"receiver": "pager", "group_by": ["alertname"], "group_wait": "0s"},
        "receivers": {"pager": {"webhook": {"url": url}}},
        **extra,
    })


class Platform:
    """What the query engine returns: both services in trouble."""

    def evaluate(self, expr: str, at: datetime) -> Sequence[Sample]:
        return [({"database_trouble": DATABASE, "orders_trouble": ORDERS}[expr], 1.0)]


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def _cycle(store: Store, webhook: WebhookServer, source: str, target: str, **extra: Any) -> CycleReport:
    alerting = Alerting(_settings(webhook.url, source, target, **extra), store=store,
                        evaluate=Platform().evaluate, clock=ManualClock(T0),
                        depends_on=dependencies(loads(SHOP_INVENTORY)))
    return alerting.run_once()


def _paged(webhook: WebhookServer) -> set[str]:
    return {a["labels"]["alertname"] for _, page in webhook.received for a in page["alerts"]}


def test_a_p3_on_the_database_does_not_mute_a_p0_of_orders(store: Store, webhook: WebhookServer) -> None:
    report = _cycle(store, webhook, source="P3", target="P0")
    assert report.muted.inhibited == {}
    assert _paged(webhook) == {"DatabaseTrouble", "OrdersTrouble"}


def test_a_p1_on_the_database_mutes_a_p2_of_orders(store: Store, webhook: WebhookServer) -> None:
    report = _cycle(store, webhook, source="P1", target="P2")
    (inhibition,) = report.muted.inhibited.values()
    assert inhibition.target.name == "OrdersTrouble" and inhibition.cause.name == "DatabaseTrouble"
    assert _paged(webhook) == {"DatabaseTrouble"}
    (page,) = [page for _, page in webhook.received]
    assert [e["alert"]["labels"]["alertname"] for e in page["explains"]] == ["OrdersTrouble"]


def test_an_equally_severe_dependency_mutes(store: Store, webhook: WebhookServer) -> None:
    report = _cycle(store, webhook, source="P0", target="P0")
    assert [i.target.name for i in report.muted.inhibited.values()] == ["OrdersTrouble"]


def test_operators_may_let_a_dependency_mute_more_severe_alerts(store: Store, webhook: WebhookServer) -> None:
    report = _cycle(store, webhook, source="P3", target="P0", inhibit_dependents_more_severe=3)
    assert [i.target.name for i in report.muted.inhibited.values()] == ["OrdersTrouble"]
    assert _paged(webhook) == {"DatabaseTrouble"}


@pytest.mark.parametrize(
    ("more_severe", "muted"),
    [(0, {"P2", "P3"}), (1, {"P1", "P2", "P3"}), (2, {"P0", "P1", "P2", "P3"})],
)
def test_the_setting_counts_severity_levels(more_severe: int, muted: set[str]) -> None:
    database = alert("DatabaseTrouble", severity="P2", service="postgres")
    orders = {s: alert("OrdersTrouble", severity=s, service="orders") for s in ("P0", "P1", "P2", "P3")}
    found = inhibitions([database, *orders.values()], depends_on={"orders": ["postgres"]},
                        more_severe=more_severe)
    assert {s for s, a in orders.items() if a.fingerprint in found} == muted


def test_the_root_cause_is_one_severe_enough_to_mute() -> None:
    # payments (P0) needs postgres (P3): the P3 is further down the chain but cannot mute
    # orders' P1, so payments' alert is what explains it.
    database = alert("DiskWarning", severity="P3", service="postgres")
    payments = alert("ServiceDown", severity="P0", service="payments")
    orders = alert("HighErrorRate", severity="P1", service="orders")
    found = inhibitions([database, payments, orders],
                        depends_on={"orders": ["payments"], "payments": ["postgres"]})
    assert set(found) == {orders.fingerprint}
    assert found[orders.fingerprint].cause == payments


def test_inhibition_rules_keep_muting_what_they_say_whatever_the_severities() -> None:
    settings = AlertingSettings.model_validate({"inhibit_rules": [
        {"source_matchers": ['alertname="Maintenance"'], "target_matchers": ['service="orders"']}]})
    notice = alert("Maintenance", severity="P3", service="orders")
    down = alert("ServiceDown", severity="P0", service="orders")
    assert set(inhibitions([notice, down], settings.inhibit_rules)) == {down.fingerprint}


def test_the_alertmanager_export_inhibits_only_as_opsplane_does() -> None:
    exported = export(AlertingSettings.model_validate({"builtin_rules": {"enabled": False}}),
                      depends_on={"orders": ["postgres"]})
    rules = exported.alertmanager["inhibit_rules"]
    by_source = {next(m for m in r["source_matchers"] if m.startswith("severity")): r for r in rules}
    assert by_source['severity="P0"']["target_matchers"] == ['service=~"orders"']
    assert by_source['severity="P1"']["target_matchers"] == ['service=~"orders"', 'severity=~"P1|P2|P3"']
    assert by_source['severity="P3"']["target_matchers"] == ['service=~"orders"', 'severity="P3"']
    assert all(r["equal"] == ["env"] for r in rules)
    wide = export(AlertingSettings.model_validate({"builtin_rules": {"enabled": False},
                                                   "inhibit_dependents_more_severe": 3}),
                  depends_on={"orders": ["postgres"]})
    assert wide.alertmanager["inhibit_rules"] == [
        {"source_matchers": ['service="postgres"'], "target_matchers": ['service=~"orders"'],
         "equal": ["env"]}]


INVENTORY = """\
platform: {name: shop}
services:
  orders: {port: 8001, depends_on: [postgres]}
databases:
  postgres: {port: 5432}
alerting:
  inhibit_dependents_more_severe: %s
"""


def test_the_setting_is_read_from_the_inventory() -> None:
    assert loads(INVENTORY % "1").alerting.inhibit_dependents_more_severe == 1
    assert loads(INVENTORY.replace("  inhibit_dependents_more_severe: %s\n", "  {}\n")
                 .replace("alerting:\n  {}", "alerting: {}")).alerting.inhibit_dependents_more_severe == 0


@pytest.mark.parametrize("bad", ["4", "-1", "yes", "true", "1.5", "P1"])
def test_config_validate_refuses_a_bad_setting_with_file_line_and_field(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "opsplane.yaml"
    path.write_text(INVENTORY % bad)
    result = CliRunner().invoke(config_app, ["validate", str(path), "--json"])
    assert result.exit_code == 3, result.output
    (problem,) = json.loads(result.stdout)["problems"]
    assert (problem["file"], problem["line"], problem["field"]) == (
        str(path), 7, "alerting.inhibit_dependents_more_severe")
    assert problem["message"]
