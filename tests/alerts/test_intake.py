"""Alerts received from a Prometheus go through the same cycle as opsplane's own: one page
when they fire, none for Prometheus's re-sends, a resolve when they are resolved or stop being
sent, silences and `depends_on` inhibition applied, nothing paged twice across a restart."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest

from opsplane.alerts import service
from opsplane.alerts.flows import Alerting, dependencies
from opsplane.alerts.intake import (
    RESOLVE_TIMEOUT,
    AlertInbox,
    IntakeError,
    follow,
    parse_alerts,
    read_alerts,
    severity_labels,
)
from opsplane.alerts.models import AlertingSettings, IntakeSettings
from opsplane.alerts.state import RESOLVED_RETENTION, AlertState, Sample
from opsplane.clock import ManualClock
from opsplane.config import loads
from opsplane.events import service as events
from opsplane.store import Store
from tests.alerts.factories import SHOP_INVENTORY, T0
from tests.alerts.webhook import WebhookServer

SENDER = "token:prometheus"


def posted(name: str = "InstanceDown", *, ends_at: datetime | None, starts_at: datetime = T0,
           **labels: str) -> dict[str, Any]:
    """One alert as Prometheus's notifier posts it."""
    body: dict[str, Any] = {
        "labels": {"alertname": name, "job": "x", **labels},
        "annotations": {"summary": f"{name} on x"},
        "startsAt": _rfc3339(starts_at),
        "generatorURL": "http://prometheus.example/graph?g0.expr=up%3D%3D0",
    }
    if ends_at is not None:
        body["endsAt"] = _rfc3339(ends_at)
    return body


def _rfc3339(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _nothing(expr: str, at: datetime) -> Sequence[Sample]:
    return []


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with WebhookServer() as server:
        yield server


class Receiving:
    """Alerting with no rules of its own, fed through an inbox as the API feeds it."""

    def __init__(self, store: Store, webhook: WebhookServer, clock: ManualClock) -> None:
        self.store, self.webhook, self.clock = store, webhook, clock
        self.alerting = self.restart()

    def restart(self) -> Alerting:
        settings = AlertingSettings.model_validate({
            "builtin_rules": {"enabled": False},
            "route": {"receiver": "pager", "group_by": ["alertname", "service"], "group_wait": "10s",
                      "group_interval": "1m"},
            "receivers": {"pager": {"webhook": {"url": self.webhook.url}}},
        })
        self.alerting = Alerting(settings, store=self.store, evaluate=_nothing, clock=self.clock,
                                 depends_on=dependencies(loads(SHOP_INVENTORY)), inbox=AlertInbox(self.clock))
        return self.alerting

    def post(self, *alerts: dict[str, Any]) -> None:
        assert self.alerting.inbox is not None
        self.alerting.inbox.put(parse_alerts(list(alerts), now=self.clock.now(), sender=SENDER))

    def cycle(self, after: float = 0.0) -> None:
        self.clock.advance(after)
        self.alerting.run_once()

    def pages(self) -> list[tuple[str, str]]:
        return [(alert["status"], alert["labels"]["alertname"])
                for _, message in self.webhook.received for alert in message["alerts"]]


@pytest.fixture
def receiving(store: Store, webhook: WebhookServer) -> Receiving:
    return Receiving(store, webhook, ManualClock(T0))


def test_a_received_alert_fires_and_is_paged_once_however_often_prometheus_sends_it(
    receiving: Receiving,
) -> None:
    ends = lambda: receiving.clock.now() + timedelta(minutes=4)  # noqa: E731 - as Prometheus
    receiving.post(posted(ends_at=ends(), severity="critical"))
    receiving.cycle()
    assert receiving.pages() == []  # group_wait
    receiving.cycle(after=10)
    assert receiving.pages() == [("firing", "InstanceDown")]
    _, message = receiving.webhook.received[0]
    [alert] = message["alerts"]
    assert alert["labels"]["severity"] == "P1" and alert["labels"]["original_severity"] == "critical"
    assert alert["startsAt"] == "2026-01-06T10:00:00Z"  # when Prometheus says it started
    assert alert["generatorURL"].startswith("http://prometheus.example/graph")
    for _ in range(10):  # Prometheus re-sends every minute, each time with a later endsAt
        receiving.clock.advance(60)
        receiving.post(posted(ends_at=ends(), severity="critical"))
        receiving.cycle()
    assert receiving.pages() == [("firing", "InstanceDown")]
    with receiving.store.session() as session:
        [fired] = events.get_all(session, kind="alert.*")[-1:]
        assert [e.kind for e in events.get_all(session, kind="alert.firing")] == ["alert.firing"]
        [stored] = service.get_all(session)
    assert fired.details["source"] == "prometheus" and fired.details["sender"] == SENDER
    assert stored.source == "prometheus" and stored.state is AlertState.FIRING


def test_an_alert_prometheus_stops_sending_resolves_when_its_end_passes(receiving: Receiving) -> None:
    receiving.post(posted(ends_at=T0 + timedelta(minutes=4)))
    receiving.cycle()
    receiving.cycle(after=10)
    receiving.cycle(after=229)  # 3m59s: still firing
    assert receiving.pages() == [("firing", "InstanceDown")]
    receiving.cycle(after=1)
    assert receiving.pages() == [("firing", "InstanceDown"), ("resolved", "InstanceDown")]
    _, message = receiving.webhook.received[-1]
    assert message["alerts"][0]["endsAt"] == "2026-01-06T10:04:00Z"


def test_an_alert_sent_without_an_end_resolves_after_the_resolve_timeout(receiving: Receiving) -> None:
    receiving.post(posted(ends_at=None))
    receiving.cycle()
    receiving.cycle(after=RESOLVE_TIMEOUT.total_seconds())
    with receiving.store.session() as session:
        [stored] = service.get_all(session)
    assert stored.state is AlertState.RESOLVED


def test_a_resolve_from_prometheus_is_paged_once(receiving: Receiving) -> None:
    receiving.post(posted(ends_at=T0 + timedelta(minutes=4)))
    receiving.cycle()
    receiving.cycle(after=10)
    receiving.clock.advance(50)
    receiving.post(posted(ends_at=receiving.clock.now()))  # resolved: endsAt is now
    receiving.cycle(after=10)
    receiving.post(posted(ends_at=receiving.clock.now() - timedelta(seconds=10)))  # sent again
    receiving.cycle(after=60)
    receiving.cycle(after=60)
    assert receiving.pages() == [("firing", "InstanceDown"), ("resolved", "InstanceDown")]
    with receiving.store.session() as session:
        assert len(events.get_all(session, kind="alert.resolved")) == 1


def test_a_silence_mutes_a_received_alert(receiving: Receiving) -> None:
    with receiving.store.session() as session:
        service.create_silence(session, matchers=['alertname="InstanceDown"'], author="ana",
                               comment="x is being replaced", starts_at=T0, ends_at=T0 + timedelta(hours=1),
                               now=T0, actor="cli:ana")
    receiving.post(posted(ends_at=T0 + timedelta(minutes=4)))
    receiving.cycle()
    receiving.cycle(after=10)
    receiving.cycle(after=60)
    assert receiving.pages() == []


def test_a_received_alert_of_a_dependency_inhibits_its_dependants(receiving: Receiving) -> None:
    ends_at = T0 + timedelta(minutes=4)
    receiving.post(posted("PostgresDown", ends_at=ends_at, service="postgres"),
                   posted("OrdersSlow", ends_at=ends_at, service="orders", severity="warning"))
    receiving.cycle()
    receiving.cycle(after=10)
    assert receiving.pages() == [("firing", "PostgresDown")]
    _, message = receiving.webhook.received[0]
    [explained] = message["explains"]
    assert explained["alert"]["labels"]["alertname"] == "OrdersSlow"


def test_a_restart_pages_nothing_again_and_still_resolves(receiving: Receiving) -> None:
    receiving.post(posted(ends_at=T0 + timedelta(minutes=4)))
    receiving.cycle()
    receiving.cycle(after=10)
    receiving.restart()
    receiving.cycle(after=30)
    assert receiving.pages() == [("firing", "InstanceDown")]
    receiving.cycle(after=240)  # Prometheus went quiet: the end passes after the restart
    assert receiving.pages() == [("firing", "InstanceDown"), ("resolved", "InstanceDown")]


def test_an_alert_that_fires_again_after_resolving_is_paged_again(receiving: Receiving) -> None:
    receiving.post(posted(ends_at=T0 + timedelta(minutes=1)))
    receiving.cycle()
    receiving.cycle(after=10)
    receiving.cycle(after=60)  # ended at 10:01, resolved
    receiving.clock.advance(60)
    receiving.post(posted(ends_at=receiving.clock.now() + timedelta(minutes=4),
                          starts_at=receiving.clock.now()))
    receiving.cycle()
    receiving.cycle(after=60)
    assert receiving.pages() == [("firing", "InstanceDown"), ("resolved", "InstanceDown"),
                                 ("firing", "InstanceDown")]


# --- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(("given", "severity", "original"), [
    ("P0", "P0", None), ("p3", "P3", "p3"), ("critical", "P1", "critical"), ("warning", "P2", "warning"),
    ("info", "P3", "info"), ("page-me", "P2", "page-me"), (None, "P2", None),
])
def test_severity_becomes_one_of_opsplanes_keeping_the_senders(
    given: str | None, severity: str, original: str | None
) -> None:
    labels = severity_labels({"alertname": "A", **({"severity": given} if given else {})})
    assert labels["severity"] == severity
    assert labels.get("original_severity") == original


@pytest.mark.parametrize(("body", "reason"), [
    ({"labels": {}}, "must be a JSON list"),
    ([1], "alerts[0] must be an object"),
    ([{"annotations": {}}], "alerts[0].labels must be an object"),
    ([{"labels": {}}], "alerts[0].labels must not be empty"),
    ([{"labels": {"job": "x"}}], "non-empty alertname"),
    ([{"labels": {"alertname": "A", "bad-name": "x"}}], "'bad-name' is not a valid label name"),
    ([{"labels": {"alertname": "A", "n": 1}}], "alerts[0].labels.n must be a string"),
    ([{"labels": {"alertname": "A"}, "startsAt": "yesterday"}], "not an RFC 3339 time"),
    ([{"labels": {"alertname": "A"}, "endsAt": "2026-01-06T10:00:00"}], "has no time zone"),
    ([{"labels": {"alertname": "A"}, "startsAt": "2026-01-06T10:00:00Z",
       "endsAt": "2026-01-06T09:00:00Z"}], "endsAt is before its startsAt"),
    ([{"labels": {"alertname": "A"}, "status": "firing"}], "unknown fields: status"),
])
def test_a_malformed_body_is_refused_with_where_and_why(body: Any, reason: str) -> None:
    with pytest.raises(IntakeError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_alerts(body, now=T0, sender=SENDER)


def test_go_zero_times_mean_not_set() -> None:
    [alert] = parse_alerts([{"labels": {"alertname": "A"}, "startsAt": "0001-01-01T00:00:00Z",
                             "endsAt": "0001-01-01T00:00:00Z"}], now=T0, sender=SENDER)
    assert alert.starts_at == T0 and alert.ends_at == T0 + RESOLVE_TIMEOUT


def test_a_resolve_of_an_alert_never_seen_is_nothing() -> None:
    [alert] = parse_alerts([posted(ends_at=T0)], now=T0, sender=SENDER)
    cycle = follow([], [alert], T0)
    assert cycle.alerts == [] and cycle.transitions == []


def test_the_inbox_keeps_the_latest_copy_and_gives_back_what_a_failed_cycle_took() -> None:
    inbox = AlertInbox(ManualClock(T0))
    first = parse_alerts([posted(ends_at=T0 + timedelta(minutes=4))], now=T0, sender=SENDER)
    later = parse_alerts([posted(ends_at=T0 + timedelta(minutes=5))], now=T0, sender=SENDER)
    inbox.put(first)
    inbox.put(later)
    taken = inbox.take()
    assert taken == later and len(inbox) == 0
    newest = parse_alerts([posted(ends_at=T0 + timedelta(minutes=6))], now=T0, sender=SENDER)
    inbox.put(newest)
    inbox.give_back(taken)
    assert inbox.take() == newest


def test_an_end_that_passed_while_serve_was_down_is_still_notified(receiving: Receiving) -> None:
    receiving.post(posted(ends_at=T0 + timedelta(minutes=4)))
    receiving.cycle()
    receiving.cycle(after=10)
    receiving.restart()
    receiving.cycle(after=3600)  # down for an hour
    assert receiving.pages() == [("firing", "InstanceDown"), ("resolved", "InstanceDown")]
    _, message = receiving.webhook.received[-1]
    assert message["alerts"][0]["endsAt"] == "2026-01-06T10:04:00Z"
    receiving.cycle(after=RESOLVED_RETENTION.total_seconds())
    with receiving.store.session() as session:
        assert service.get_all(session) == []


def test_a_resolution_that_could_not_be_delivered_keeps_the_alert_until_it_is(receiving: Receiving) -> None:
    receiving.post(posted(ends_at=T0 + timedelta(minutes=4)))
    receiving.cycle()
    receiving.cycle(after=10)
    receiving.post(posted(ends_at=receiving.clock.now()))
    receiving.webhook.status = 503
    receiving.cycle(after=60)
    receiving.cycle(after=RESOLVED_RETENTION.total_seconds() + 300)  # the pager is still down
    receiving.webhook.status = 200
    tried = len(receiving.pages())
    receiving.cycle(after=60)
    assert receiving.pages()[tried:] == [("resolved", "InstanceDown")]
    receiving.cycle(after=60)
    with receiving.store.session() as session:
        assert service.get_all(session) == []


def test_a_sender_holds_at_most_its_limit_counting_what_a_running_cycle_took() -> None:
    inbox = AlertInbox(ManualClock(T0), max_per_sender=2)
    later = T0 + timedelta(minutes=4)
    first = parse_alerts([posted("A", ends_at=later), posted("B", ends_at=later)], now=T0, sender=SENDER)
    assert inbox.put(first) == []
    taken = inbox.take()  # a cycle runs: what it took still counts
    [refused] = inbox.put(parse_alerts([posted("C", ends_at=later)], now=T0, sender=SENDER))
    assert refused.labels["alertname"] == "C"
    assert inbox.put(parse_alerts([posted("C", ends_at=later)], now=T0, sender="token:other")) == []
    inbox.hold([item.fingerprint for item in taken], {item.fingerprint: SENDER for item in taken})
    # what it holds is taken again from anyone: a re-send, a resolve
    assert inbox.put(parse_alerts([posted("A", ends_at=T0)], now=T0, sender="token:other")) == []
    inbox.hold([taken[1].fingerprint], {})  # A resolved and was forgotten
    assert inbox.put(parse_alerts([posted("D", ends_at=later)], now=T0, sender=SENDER)) == []


def test_labels_over_their_bounds_refuse_the_alert_and_texts_are_cut() -> None:
    limits = IntakeSettings(max_labels=4, max_label_value_length=64, max_annotation_length=256)
    body = [posted("A", ends_at=None, service="s" * 65), posted("B", ends_at=None, a="1", b="2", c="3"),
            posted("C", ends_at=None, nul="x\x00y"), {**posted("D", ends_at=None),
                                                      "annotations": {"summary": "w" * 1000}}]
    reading = read_alerts(body, now=T0, sender=SENDER, limits=limits)
    assert [a.labels["alertname"] for a in reading.alerts] == ["D"]
    assert reading.problems == [
        "alerts[0].labels.service is 65 characters long, at most 64 (alerting.intake.max_label_value_length)",
        "alerts[1].labels has 5 entries, at most 4 (alerting.intake.max_labels)",
        "alerts[2].labels.nul holds a NUL character or an unpaired surrogate (\\u0000, \\ud800...), "
        "which no store keeps",
    ]
    summary = reading.alerts[0].annotations["summary"]
    assert len(summary) == 256 and summary.endswith(" … [cut from 1,000 characters]")
