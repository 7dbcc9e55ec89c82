"""The end of an alert's life, over a real store and a real webhook: a resolution is kept until
the receivers told of the firing have heard it, an edited or removed rule resolves its firing
alerts and says why, and a notified group is sent again only when it has something new to say."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from opsplane.alerts import service
from opsplane.alerts.flows import Alerting
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.state import Sample
from opsplane.clock import ManualClock
from opsplane.events import service as events
from opsplane.events.summary import describe
from opsplane.incidents import service as incidents
from opsplane.incidents.models import IncidentsSettings
from opsplane.store import Store
from tests.alerts.factories import T0
from tests.alerts.webhook import WebhookServer

ERRORS: dict[str, Any] = {"name": "HighErrorRate", "expr": "error_ratio > 0.01", "severity": "P1",
                          "annotations": {"summary": "{{ $labels.service }} fails"}}
LATENCY: dict[str, Any] = {"name": "HighLatency", "expr": "p99 > 1", "severity": "P2"}


class Cycles:
    """One `serve` after another over one store: a restart may bring an edited configuration."""

    def __init__(self, store: Store, webhook: WebhookServer, *, rules: Sequence[dict[str, Any]] = (ERRORS,),
                 group_interval: str = "5m", send_resolved: bool = True,
                 incidents: IncidentsSettings | None = None) -> None:
        self.store, self.webhook, self.clock = store, webhook, ManualClock(T0)
        self.series: dict[str, list[Sample]] = {}
        self.route = {"receiver": "pager", "group_by": ["alertname"], "group_wait": "0s",
                      "group_interval": group_interval}
        self.receivers = {"pager": {"webhook": {"url": webhook.url}, "send_resolved": send_resolved}}
        self.incidents = incidents
        self.alerting = self.start(rules)

    def start(self, rules: Sequence[dict[str, Any]]) -> Alerting:
        settings = AlertingSettings.model_validate({
            "rules": list(rules), "builtin_rules": {"enabled": False}, "route": self.route,
            "receivers": self.receivers,
        })
        self.alerting = Alerting(settings, store=self.store, evaluate=self.evaluate, clock=self.clock,
                                 incidents=self.incidents)
        return self.alerting

    def evaluate(self, expr: str, at: datetime) -> Sequence[Sample]:
        return self.series.get(expr, [])

    def fail(self, expr: str, *services: str) -> None:
        self.series[expr] = [({"service": name, "env": "production"}, 1.5) for name in services]

    def cycle(self, after: float = 0) -> None:
        self.clock.advance(after)
        self.alerting.run_once()

    def cycles_for(self, seconds: float, every: float = 60) -> None:
        for _ in range(int(seconds // every)):
            self.cycle(every)

    def pages(self) -> list[tuple[str, list[str], list[str]]]:
        """Each message the webhook got: its status, the firing and the resolved alerts' services."""
        def services(page: dict[str, Any], status: str) -> list[str]:
            return [a["labels"].get("service", "") for a in page["alerts"] if a["status"] == status]

        return [(page["status"], services(page, "firing"), services(page, "resolved"))
                for _, page in self.webhook.received]

    def stored(self) -> list[tuple[str, str]]:
        with self.store.session() as session:
            return [(a.name, a.state.value) for a in service.get_all(session)]


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


# --- a resolution is kept until it is delivered ------------------------------------------------


def test_a_resolution_due_after_a_long_group_interval_is_sent_then_forgotten(
    store: Store, webhook: WebhookServer
) -> None:
    run = Cycles(store, webhook, group_interval="30m")
    run.fail("error_ratio > 0.01", "orders")
    run.cycle()
    run.series.clear()
    run.cycle(60)  # resolved one minute after the page; its group may speak again at 30 minutes
    run.cycles_for(29 * 60 - 60)
    assert run.pages() == [("firing", ["orders"], [])] and run.stored() == [("HighErrorRate", "resolved")]
    run.cycle(60)
    assert run.pages() == [("firing", ["orders"], []), ("resolved", [], ["orders"])]
    run.cycle(60)
    assert run.stored() == []  # heard by everyone told it fired, and older than 15 minutes


def test_a_resolution_that_cannot_be_delivered_is_given_up_after_a_day(
    store: Store, webhook: WebhookServer
) -> None:
    run = Cycles(store, webhook)
    run.fail("error_ratio > 0.01", "orders")
    run.cycle()
    run.series.clear()
    webhook.status = 503
    run.cycle(60)
    run.cycles_for(23 * 3600, every=3600)
    assert run.stored() == [("HighErrorRate", "resolved")]
    run.cycle(3600)
    assert run.stored() == []
    assert run.pages() == [("firing", ["orders"], [])] + [("resolved", [], ["orders"])] * 23  # all failed


def test_a_resolution_no_receiver_waits_for_is_forgotten_after_15_minutes(
    store: Store, webhook: WebhookServer
) -> None:
    run = Cycles(store, webhook, send_resolved=False)
    run.fail("error_ratio > 0.01", "orders")
    run.cycle()
    run.series.clear()
    run.cycle(60)
    run.cycles_for(14 * 60)
    assert run.stored() == [("HighErrorRate", "resolved")]
    run.cycle(60)
    assert run.stored() == [] and run.pages() == [("firing", ["orders"], [])]


# --- an edited or removed rule resolves its alerts ----------------------------------------------


def _resolved_events(store: Store) -> list[str]:
    with store.session() as session:
        return [describe(e) for e in events.get_all(session, kind="alert.resolved")]


def test_a_removed_rule_resolves_its_firing_alert_and_says_why(store: Store, webhook: WebhookServer) -> None:
    run = Cycles(store, webhook, rules=[ERRORS, LATENCY])
    run.fail("error_ratio > 0.01", "orders")
    run.cycle()
    run.start([LATENCY])  # serve restarted without the rule
    run.cycle(15)
    reason = 'rule HighErrorRate{severity="P1"} was removed from the configuration'
    assert _resolved_events(store) == [
        f"Alert HighErrorRate resolved (env=production, service=orders): {reason}"]
    run.cycles_for(5 * 60, every=15)
    assert run.pages() == [("firing", ["orders"], []), ("resolved", [], ["orders"])]
    _, page = webhook.received[-1]
    assert page["alerts"][0]["annotations"]["resolved_reason"] == reason
    run.cycle(15 * 60)
    assert run.stored() == []


def test_a_rule_whose_labels_changed_resolves_the_old_alerts_and_fires_the_new_ones(
    store: Store, webhook: WebhookServer
) -> None:
    run = Cycles(store, webhook)
    run.fail("error_ratio > 0.01", "orders")
    run.cycle()
    run.start([{**ERRORS, "severity": "P0"}])
    run.cycle(15)
    assert _resolved_events(store) == [
        'Alert HighErrorRate resolved (env=production, service=orders): rule HighErrorRate{severity="P1"} '
        'was changed; the configuration has HighErrorRate{severity="P0"} now'
    ]
    assert sorted(run.stored()) == [("HighErrorRate", "firing"), ("HighErrorRate", "resolved")]
    run.cycles_for(5 * 60, every=15)
    (_, page) = webhook.received[-1]
    assert [(a["status"], a["labels"]["severity"]) for a in page["alerts"]] == [("firing", "P0"),
                                                                                ("resolved", "P1")]


def test_an_edit_that_keeps_name_and_labels_keeps_the_alert_without_a_second_page(
    store: Store, webhook: WebhookServer
) -> None:
    run = Cycles(store, webhook)
    run.fail("error_ratio > 0.01", "orders")
    run.cycle()
    edited = {**ERRORS, "expr": "error_ratio > 0.02", "for": "10m", "annotations": {"summary": "bad"}}
    run.series["error_ratio > 0.02"] = run.series.pop("error_ratio > 0.01")
    run.start([edited])
    run.cycles_for(5 * 3600, every=3600)
    assert run.stored() == [("HighErrorRate", "firing")] and _resolved_events(store) == []
    assert [status for status, _, _ in run.pages()] == ["firing", "firing"]  # the 4h repeat only


def test_an_incident_opened_by_a_removed_rule_hears_its_resolution(
    store: Store, webhook: WebhookServer
) -> None:
    run = Cycles(store, webhook, incidents=IncidentsSettings())
    run.fail("error_ratio > 0.01", "orders")
    run.cycle()
    run.start([])
    run.cycle(15)
    with store.session() as session:
        [incident] = incidents.get_all(session)
        timeline = incidents.get_timeline(session, incident_id=incident.id, now=run.clock.now())
    assert any(entry.what.startswith("Alert HighErrorRate resolved") and entry.what.endswith(
        'rule HighErrorRate{severity="P1"} was removed from the configuration') for entry in timeline)


def test_a_pending_alert_of_a_removed_rule_is_forgotten(store: Store, webhook: WebhookServer) -> None:
    run = Cycles(store, webhook, rules=[{**ERRORS, "for": "5m"}])
    run.fail("error_ratio > 0.01", "orders")
    run.cycle()
    run.start([])
    run.cycle(15)
    assert run.stored() == [] and run.pages() == []
    with store.session() as session:
        kinds = [e.kind for e in events.get_all(session, kind="alert.*")]
    assert kinds == ["alert.inactive", "alert.pending"]


# --- a notified group is sent again only when it has news ----------------------------------------


def test_silencing_one_of_two_notified_alerts_sends_nothing_at_group_interval(
    store: Store, webhook: WebhookServer
) -> None:
    run = Cycles(store, webhook)
    run.fail("error_ratio > 0.01", "orders", "payments")
    run.cycle()
    with store.session() as session:
        service.create_silence(session, matchers=['service="payments"'], author="ana", comment="deploy",
                               starts_at=run.clock.now(), ends_at=run.clock.now() + timedelta(hours=1),
                               now=run.clock.now(), actor="cli:ana")
    run.cycles_for(30 * 60)
    assert run.pages() == [("firing", ["orders", "payments"], [])]
    run.series["error_ratio > 0.01"] = run.series["error_ratio > 0.01"][:1]  # payments recovers, silenced
    run.cycles_for(5 * 60)
    assert run.pages()[1:] == [("firing", ["orders"], ["payments"])]  # paged for it: told it is over


def test_a_resolution_to_a_receiver_without_send_resolved_sends_nothing(
    store: Store, webhook: WebhookServer
) -> None:
    run = Cycles(store, webhook, send_resolved=False)
    run.fail("error_ratio > 0.01", "orders", "payments")
    run.cycle()
    run.fail("error_ratio > 0.01", "orders")
    run.cycles_for(30 * 60)
    assert run.pages() == [("firing", ["orders", "payments"], [])]


def test_a_new_alert_joining_a_notified_group_is_sent_at_group_interval(
    store: Store, webhook: WebhookServer
) -> None:
    run = Cycles(store, webhook)
    run.fail("error_ratio > 0.01", "orders")
    run.cycle()
    run.fail("error_ratio > 0.01", "orders", "payments")
    run.cycles_for(5 * 60 - 60)
    assert len(run.pages()) == 1
    run.cycle(60)
    assert run.pages()[1:] == [("firing", ["orders", "payments"], [])]
    assert run.alerting.run_once().sent == []
    run.fail("error_ratio > 0.01", "orders")
    run.cycles_for(5 * 60)
    assert run.pages()[2:] == [("firing", ["orders"], ["payments"])]
