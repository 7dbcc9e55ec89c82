"""Whole alerting cycles over a real store and a real webhook: one page for a down database
naming the alerts it explains, no second page after a restart, silences, failed deliveries
retried."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta

import pytest

from opsplane.alerts import service
from opsplane.alerts.flows import Alerting, dependencies
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.state import Sample
from opsplane.clock import ManualClock
from opsplane.config import loads
from opsplane.events import service as events
from opsplane.store import Store
from tests.alerts.factories import SHOP_INVENTORY, T0
from tests.alerts.webhook import WebhookServer


def _settings(url: str) -> AlertingSettings:
    return AlertingSettings.model_validate({
        "rules": [
            {"name": "DatabaseDown", "expr": "pg_up == 0", "for": "30s", "severity": "P0",
             "annotations": {"summary": "{{ $labels.service }} is down"},
             "runbook": "https://runbooks.example/database-down"},
            {"name": "HighErrorRate", "expr": "error_ratio > 0.01", "for": "30s", "severity": "P1",
             "annotations": {"summary": "{{ $labels.service }}: {{ $value | humanizePercentage }} errors"}},
        ],
        "route": {"receiver": "pager", "group_by": ["alertname"], "group_wait": "10s"},
        "receivers": {"pager": {"webhook": {"url": url, "bearer_token": "env:PAGER_TOKEN"}}},
    })


class Platform:
    """What the query engine would return: series set and cleared by the test."""

    def __init__(self) -> None:
        self.series: dict[str, list[Sample]] = {}

    def evaluate(self, expr: str, at: datetime) -> Sequence[Sample]:
        return self.series.get(expr, [])

    def database_down(self) -> None:
        self.series["pg_up == 0"] = [({"service": "postgres", "env": "production"}, 0.0)]
        self.series["error_ratio > 0.01"] = [({"service": "orders", "env": "production"}, 0.25)]

    def recovered(self) -> None:
        self.series.clear()


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


def _alerting(store: Store, webhook: WebhookServer, clock: ManualClock, platform: Platform,
              environ: Mapping[str, str] | None = None) -> Alerting:
    inventory = loads(SHOP_INVENTORY)
    return Alerting(_settings(webhook.url), store=store, evaluate=platform.evaluate, clock=clock,
                    depends_on=dependencies(inventory), environ=environ or {"PAGER_TOKEN": "s3cret"})


def test_a_down_database_is_one_page_that_names_the_alerts_it_explains(
    store: Store, webhook: WebhookServer
) -> None:
    clock, platform = ManualClock(T0), Platform()
    alerting = _alerting(store, webhook, clock, platform)
    platform.database_down()
    alerting.run_once()  # pending
    clock.advance(30)
    alerting.run_once()  # firing; the group waits 10 s for more alerts
    clock.advance(10)
    alerting.run_once()
    assert len(webhook.received) == 1
    headers, page = webhook.received[0]
    assert headers["Authorization"] == "Bearer s3cret"
    assert page["status"] == "firing" and page["receiver"] == "pager"
    (database,) = page["alerts"]
    assert database["labels"]["alertname"] == "DatabaseDown"
    assert database["annotations"] == {"summary": "postgres is down",
                                       "runbook_url": "https://runbooks.example/database-down"}
    (explained,) = page["explains"]
    assert explained["alert"]["labels"]["service"] == "orders"
    assert explained["rootCause"]["labels"]["alertname"] == "DatabaseDown"
    with store.session() as session:
        (notified,) = events.get_all(session, kind="alert.notified")
    assert notified.details["explains"][0]["root_cause"] == "DatabaseDown"


def test_a_restart_sends_no_second_page_and_the_resolution_follows_once(
    store: Store, webhook: WebhookServer
) -> None:
    clock, platform = ManualClock(T0), Platform()
    first = _alerting(store, webhook, clock, platform)
    platform.database_down()
    first.run_once()
    clock.advance(30)
    first.run_once()
    clock.advance(10)
    assert len(first.run_once().sent) == 1
    clock.advance(15)
    restarted = _alerting(store, webhook, clock, platform)
    assert restarted.run_once().sent == []
    platform.recovered()
    clock.advance(300)
    report = restarted.run_once()
    assert [n.resolved[0].name for n in report.sent] == ["DatabaseDown"]
    assert [page["status"] for _, page in webhook.received] == ["firing", "resolved"]
    clock.advance(300)
    assert restarted.run_once().sent == []


def test_a_silenced_alert_is_not_paged_until_its_silence_is_expired(
    store: Store, webhook: WebhookServer
) -> None:
    clock, platform = ManualClock(T0), Platform()
    with store.session() as session:
        silence = service.create_silence(
            session, matchers=['alertname="DatabaseDown"'], author="ana", comment="failover drill",
            starts_at=T0, ends_at=T0 + timedelta(hours=1), now=T0, actor="cli:ana")
    alerting = _alerting(store, webhook, clock, platform)
    platform.database_down()
    alerting.run_once()
    clock.advance(30)
    report = alerting.run_once()
    clock.advance(10)
    report = alerting.run_once()
    assert report.sent == [] and len(report.muted.silenced) == 1
    with store.session() as session:
        service.expire_silence(session, silence_id=silence.id, now=clock.now(), actor="cli:ana")
    clock.advance(15)
    assert [n.firing[0].name for n in alerting.run_once().sent] == ["DatabaseDown"]


def test_a_failed_webhook_is_recorded_and_tried_again_at_the_next_cycle(
    store: Store, webhook: WebhookServer
) -> None:
    clock, platform = ManualClock(T0), Platform()
    alerting = _alerting(store, webhook, clock, platform)
    platform.database_down()
    alerting.run_once()
    clock.advance(30)
    alerting.run_once()
    clock.advance(10)
    webhook.status = 503
    report = alerting.run_once()
    assert report.sent == [] and "answered 503" in report.failed[0][1]
    webhook.status = 200
    clock.advance(15)
    assert len(alerting.run_once().sent) == 1
    with store.session() as session:
        kinds = [e.kind for e in events.get_all(session, kind="alert.notif*")]
    assert kinds == ["alert.notified", "alert.notify_failed"]


def test_a_missing_webhook_secret_is_a_failed_delivery_naming_the_variable(
    store: Store, webhook: WebhookServer
) -> None:
    clock, platform = ManualClock(T0), Platform()
    alerting = _alerting(store, webhook, clock, platform, environ={"OTHER": "x"})
    platform.database_down()
    alerting.run_once()
    clock.advance(30)
    alerting.run_once()
    clock.advance(10)
    (failure,) = alerting.run_once().failed
    assert "PAGER_TOKEN" in failure[1] and webhook.received == []


def test_a_webhook_that_stays_down_is_one_failure_event_not_one_per_cycle(
    store: Store, webhook: WebhookServer
) -> None:
    clock, platform = ManualClock(T0), Platform()
    alerting = _alerting(store, webhook, clock, platform)
    platform.database_down()
    alerting.run_once()
    clock.advance(30)
    alerting.run_once()
    webhook.status = 500
    for _ in range(3):
        clock.advance(15)
        assert len(alerting.run_once().failed) == 1
    with store.session() as session:
        assert len(events.get_all(session, kind="alert.notify_failed")) == 1


def test_a_failing_rule_is_recorded_when_it_starts_and_when_it_recovers(
    store: Store, webhook: WebhookServer
) -> None:
    clock, platform = ManualClock(T0), Platform()
    broken = {"on": True}

    def evaluate(expr: str, at: datetime) -> Sequence[Sample]:
        if broken["on"] and expr == "pg_up == 0":
            raise RuntimeError("no samples window yet")
        return platform.evaluate(expr, at)

    alerting = Alerting(_settings(webhook.url), store=store, evaluate=evaluate, clock=clock)
    for _ in range(3):
        assert list(alerting.run_once().evaluation.errors.values()) == ["no samples window yet"]
        clock.advance(15)
    broken["on"] = False
    alerting.run_once()
    with store.session() as session:
        found = [(e.kind, e.target) for e in events.get_all(session, kind="alert.rule_*")]
    assert found == [("alert.rule_recovered", 'DatabaseDown{severity="P0"}'),
                     ("alert.rule_failed", 'DatabaseDown{severity="P0"}')]
