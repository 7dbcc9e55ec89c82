"""Receivers with channels: each group notification is queued in the outbox in the same
transaction that logs it, once however often cycles run or serve restarts, and the
dispatcher delivers it to a real PagerDuty-like receiver as trigger, then resolve."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import pytest

from opsplane.alerts.flows import Alerting
from opsplane.alerts.messages import outbox_message
from opsplane.alerts.models import AlertingSettings
from opsplane.alerts.routing import Notification, SentNotification
from opsplane.alerts.state import AlertState, Sample
from opsplane.clock import ManualClock
from opsplane.config import loads
from opsplane.errors import ConfigError
from opsplane.notify import service as notify
from opsplane.notify.dispatcher import Dispatcher
from opsplane.notify.models import ChannelsSettings, Status
from opsplane.store import Store
from tests.alerts.factories import T0, alert
from tests.support.http_servers import LocalHttpServer, Reply

PAGE = {"name": "PaymentsDown", "expr": "payments_down", "severity": "P0",
        "annotations": {"summary": "payments does not answer"}, "runbook": "https://runbooks.example/payments"}


class Switch:
    """The rule's series: present while `down`."""

    down = False

    def evaluate(self, expr: str, at: datetime) -> Sequence[Sample]:
        return [({"service": "payments", "env": "production"}, 1.0)] if self.down else []


def _channels(pagerduty_url: str) -> ChannelsSettings:
    return ChannelsSettings.model_validate({"named": {
        "pager": {"type": "pagerduty", "routing_key": "env:PD_KEY", "url": pagerduty_url},
        "chat": {"type": "console"},
    }})


def _alerting(store: Store, clock: ManualClock, switch: Switch, channels: ChannelsSettings,
              rules: Sequence[dict[str, object]] = (PAGE,)) -> Alerting:
    settings = AlertingSettings.model_validate({
        "rules": list(rules), "builtin_rules": {"enabled": False},
        "route": {"receiver": "oncall", "group_wait": "0s", "group_interval": "1m"},
        "receivers": {"oncall": {"channels": ["pager", "chat"]}},
    })
    return Alerting(settings, store=store, evaluate=switch.evaluate, clock=clock, channels=channels)


def _rows(store: Store) -> list[tuple[str, str]]:
    with store.session() as session:
        return [(row.channel, row.status) for row in notify.get_all(session)]


def test_a_page_is_queued_once_per_channel_across_cycles_and_restarts(store: Store) -> None:
    clock, switch = ManualClock(T0), Switch()
    channels = _channels("http://127.0.0.1:9/unused")
    alerting = _alerting(store, clock, switch, channels)
    alerting.run_once()
    assert _rows(store) == []

    switch.down = True
    report = alerting.run_once()
    assert report.queued == 2
    assert _rows(store) == [("pager", "trigger"), ("chat", "trigger")]
    for _ in range(3):  # nothing new to say: nothing queued
        clock.advance(15)
        alerting.run_once()
    restarted = _alerting(store, clock, switch, channels)
    clock.advance(15)
    restarted.run_once()
    assert _rows(store) == [("pager", "trigger"), ("chat", "trigger")]

    switch.down = False
    clock.advance(60)
    restarted.run_once()
    assert _rows(store)[2:] == [("pager", "resolve"), ("chat", "resolve")]


def test_the_dispatcher_delivers_the_page_to_pagerduty_as_trigger_then_resolve(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PD_KEY", "routing-key-1")
    with LocalHttpServer({"/v2/enqueue": Reply(202, b'{"status":"success"}', "application/json")}) as pd:
        clock, switch = ManualClock(T0), Switch()
        channels = _channels(pd.url("/v2/enqueue"))
        alerting = _alerting(store, clock, switch, channels)
        dispatcher = Dispatcher(store, channels)
        switch.down = True
        alerting.run_once()
        dispatcher.run_once(clock.now())
        switch.down = False
        clock.advance(60)
        alerting.run_once()
        dispatcher.run_once(clock.now())
        dispatcher.close()
        bodies = [json.loads(seen.body) for seen in pd.seen]
    assert [b["event_action"] for b in bodies] == ["trigger", "resolve"]
    assert bodies[0]["dedup_key"] == bodies[1]["dedup_key"]
    assert bodies[0]["routing_key"] == "routing-key-1"
    assert bodies[0]["payload"]["severity"] == "critical"
    assert bodies[0]["payload"]["summary"] == "[P0] payments: payments does not answer"
    assert {"href": "https://runbooks.example/payments", "text": "Runbook"} in bodies[0]["links"]


def test_a_page_whose_rule_is_removed_is_resolved_at_pagerduty_and_the_message_says_why(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PD_KEY", "routing-key-1")
    with LocalHttpServer({"/v2/enqueue": Reply(202, b'{"status":"success"}', "application/json")}) as pd:
        clock, switch = ManualClock(T0), Switch()
        channels = _channels(pd.url("/v2/enqueue"))
        dispatcher = Dispatcher(store, channels)
        switch.down = True
        _alerting(store, clock, switch, channels).run_once()
        dispatcher.run_once(clock.now())
        without = _alerting(store, clock, switch, channels, rules=[])  # serve restarted, the rule deleted
        clock.advance(15)
        without.run_once()
        clock.advance(60)
        without.run_once()
        dispatcher.run_once(clock.now())
        dispatcher.close()
        bodies = [json.loads(seen.body) for seen in pd.seen]
    assert [b["event_action"] for b in bodies] == ["trigger", "resolve"]
    assert bodies[0]["dedup_key"] == bodies[1]["dedup_key"]
    with store.session() as session:
        rows = notify.get_all(session)
    [resolve] = [row for row in rows if (row.channel, row.status) == ("chat", "resolve")]
    assert resolve.payload["details"] == (
        'RESOLVED PaymentsDown (payments) at 1: payments does not answer '
        '(rule PaymentsDown{severity="P0"} was removed from the configuration)')


def _group(*alerts_: object, resolved: tuple[object, ...] = ()) -> Notification:
    return Notification(receiver="oncall", group_id="g1", group_key="{}:{}", group_labels={},
                        firing=tuple(alerts_), resolved=tuple(resolved))  # type: ignore[arg-type]


def test_a_message_names_the_worst_severity_and_its_key_changes_only_with_what_it_says() -> None:
    first = alert("HighErrorRate", severity="P1", service="orders")
    second = alert("HighLatency", severity="P2", service="orders")
    both = outbox_message(_group(first, second), previous=None)
    assert (both.severity.value, both.status, both.service) == ("P1", Status.TRIGGER, "orders")
    assert both.summary == "2 alerts: HighErrorRate, HighLatency"
    assert both.details.splitlines()[0].startswith("FIRING HighErrorRate (orders)")
    assert outbox_message(_group(second, first), previous=None).key == both.key  # order is not content
    sent = SentNotification("oncall", "g1", "{}:{}", T0, frozenset(), frozenset())
    assert outbox_message(_group(first, second), previous=sent).key != both.key  # a repeat is new
    gone = alert("HighErrorRate", severity="P1", service="orders", state=AlertState.RESOLVED)
    resolve = outbox_message(_group(resolved=(gone,)), previous=sent)
    assert resolve.status is Status.RESOLVE and resolve.group == both.group


def test_a_receiver_naming_an_undefined_channel_is_refused_at_load() -> None:
    with pytest.raises(ConfigError) as refused:
        loads("platform: {name: shop}\n"
              "channels: {named: {pagerduty: {type: console}}}\n"
              "alerting:\n"
              "  receivers:\n"
              "    default: {channels: [pagerduty, pagerdtuy]}\n")
    assert "alerting.receivers.default.channels[1]" in str(refused.value)
    assert "unknown channel 'pagerdtuy'; did you mean 'pagerduty'?" in str(refused.value)


RAW = 0.019037883636991926


def test_a_value_reaches_every_channel_in_its_rules_unit_and_exact_where_programs_read_it(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opsplane.alerts.flows import webhook_payload
    from opsplane.drivers.channels.email import format_email
    from opsplane.drivers.channels.slack import format_slack

    monkeypatch.setenv("PD_KEY", "routing-key-1")
    accepted = Reply(202, b'{"status":"success"}', "application/json")
    with LocalHttpServer({"/v2/enqueue": accepted, "/hook": Reply(204, b"")}) as receiver:
        channels = ChannelsSettings.model_validate({"named": {
            "pager": {"type": "pagerduty", "routing_key": "env:PD_KEY", "url": receiver.url("/v2/enqueue")},
            "hook": {"type": "webhook", "url": receiver.url("/hook")},
            "chat": {"type": "console"},
        }})
        settings = AlertingSettings.model_validate({
            "rules": [{"name": "LowPaymentSuccess", "expr": "failed_share > 0.01", "severity": "P1",
                       "unit": "ratio", "annotations": {"summary": "{{ $value }} of charges fail"}}],
            "builtin_rules": {"enabled": False},
            "route": {"receiver": "oncall", "group_wait": "0s"},
            "receivers": {"oncall": {"channels": ["pager", "hook", "chat"]}},
        })
        clock = ManualClock(T0)
        alerting = Alerting(settings, store=store, clock=clock, channels=channels,
                            evaluate=lambda expr, at: [({"service": "payments", "env": "production"}, RAW)])
        report = alerting.run_once()
        dispatcher = Dispatcher(store, channels)
        dispatcher.run_once(clock.now())
        dispatcher.close()
        bodies = {seen.path: json.loads(seen.body) for seen in receiver.seen}

    exact = {"alert": "LowPaymentSuccess", "service": "payments", "value": RAW, "unit": "ratio",
             "text": "1.9%"}
    page = bodies["/v2/enqueue"]["payload"]
    assert page["summary"] == "[P1] payments: 1.9% of charges fail"
    assert page["custom_details"]["details"] == (
        "FIRING LowPaymentSuccess (payments) at 1.9%: 1.9% of charges fail")
    assert page["custom_details"]["values"] == [exact]
    hook = bodies["/hook"]
    assert hook["values"] == [exact] and "at 1.9%" in hook["details"]
    assert "[P1] payments: 1.9% of charges fail" in capsys.readouterr().err  # the console
    (notification,) = report.sent
    message = outbox_message(notification, previous=None)
    slack = json.dumps(format_slack(message))
    mail = format_email(message, sender="opsplane@example.com", to=["oncall@example.com"])
    assert "1.9%" in slack and "1.9%" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    (alert_sent,) = webhook_payload(notification)["alerts"]  # Alertmanager's format, for receivers' webhooks
    assert (alert_sent["value"], alert_sent["unit"], alert_sent["valueText"]) == (RAW, "ratio", "1.9%")
    for text in (page["summary"], page["custom_details"]["details"], hook["summary"], hook["details"], slack,
                 alert_sent["annotations"]["summary"]):
        assert str(RAW) not in text
