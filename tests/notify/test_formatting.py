"""What each channel makes of a notification, without a network: pure formatting, back-off,
HTTP status classification, signatures and the digest."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from opsplane.drivers.channels.base import Outcome, classify_status, parse_retry_after, redact
from opsplane.drivers.channels.console import format_console
from opsplane.drivers.channels.email import format_email, message_id
from opsplane.drivers.channels.pagerduty import format_pagerduty
from opsplane.drivers.channels.slack import format_slack
from opsplane.drivers.channels.webhook import sign, verify, webhook_request
from opsplane.notify.backoff import retry_delay
from opsplane.notify.digest import build_digest
from opsplane.notify.models import ChannelsSettings, RetryPolicy
from tests.notify.factories import notification, pair

T0 = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)


def test_slack_message_shows_severity_service_summary_runbook_and_an_ack_button() -> None:
    body = format_slack(notification(group="orders/g 1"), ack_url="https://opsplane.example.com/ack")

    text = json.dumps(body)
    assert body["text"].startswith(":red_circle: [P1] orders: Error rate")
    assert body["blocks"][0]["text"]["text"] == "[P1] orders: Error rate above 5% for 5m"
    fields = [f["text"] for f in body["blocks"][1]["fields"]]
    assert fields == ["*Severity*\nP1", "*Status*\ntrigger", "*Service*\norders"]
    [actions] = [b for b in body["blocks"] if b["type"] == "actions"]
    assert [(e["text"]["text"], e["url"]) for e in actions["elements"]] == [
        ("Acknowledge", "https://opsplane.example.com/ack/orders%2Fg%201"),
        ("Runbook", "https://runbooks.example.com/orders"),
        ("Dashboard", "https://opsplane.example.com/ui/services/orders"),
    ]
    assert "5.2% of checkout requests fail" in text


def test_slack_resolve_has_no_ack_button_and_escapes_markup() -> None:
    _, resolve = pair("g2", details="a <b> & c")
    body = format_slack(resolve, ack_url="https://opsplane.example.com/ack")

    assert body["text"].startswith(":white_check_mark: [P1 RESOLVED]")
    buttons = [e["text"]["text"] for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "Acknowledge" not in buttons
    assert "a &lt;b&gt; &amp; c" in json.dumps(body)


def test_a_runbook_or_link_that_is_not_a_web_address_is_text_in_every_channel() -> None:
    script = "javascript:alert(document.cookie)"
    n = notification(runbook=script, links=[{"text": "Source", "href": "data:text/html,<b>x</b>"},
                                            {"text": "Graph", "href": "https://prom.example/graph"}])
    slack = format_slack(n)
    buttons = [e["url"] for b in slack["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert buttons == ["https://prom.example/graph"]
    assert script in json.dumps(slack)  # still said, as text
    html = format_email(n, sender="opsplane@example.com", to=["a@example.com"]).get_body(
        ("html",)).get_content()  # type: ignore[union-attr]
    assert 'href="javascript' not in html and 'href="data' not in html
    assert script in html and 'href="https://prom.example/graph"' in html
    event = format_pagerduty(n, routing_key="R" * 32)
    assert event["links"] == [{"href": "https://prom.example/graph", "text": "Graph"}]
    assert event["payload"]["custom_details"]["runbook"] == script


def test_slack_page_to_one_person_mentions_the_user() -> None:
    body = format_slack(notification(to="U01ANA", details="Escalation step 1"))
    assert body["blocks"][2]["text"]["text"] == "<@U01ANA> Escalation step 1"


def test_pagerduty_trigger_acknowledge_resolve_share_the_group_as_dedup_key() -> None:
    trigger, resolve = pair("orders/HighErrorRate", severity="P0")
    ack = notification(key="k:ack", group="orders/HighErrorRate", status="acknowledge")

    events = [format_pagerduty(n, routing_key="R" * 32) for n in (trigger, ack, resolve)]

    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {"orders/HighErrorRate"}
    assert events[0]["payload"]["severity"] == "critical"
    assert events[0]["payload"]["source"] == "orders"
    assert events[0]["payload"]["summary"] == "[P0] orders: Error rate above 5% for 5m"
    assert events[0]["links"][0] == {"href": "https://runbooks.example.com/orders", "text": "Runbook"}
    assert "payload" not in events[1] and "payload" not in events[2]


@pytest.mark.parametrize(("severity", "expected"), [("P0", "critical"), ("P1", "error"),
                                                    ("P2", "warning"), ("P3", "info")])
def test_pagerduty_severity_follows_the_manual_levels(severity: str, expected: str) -> None:
    event = format_pagerduty(notification(severity=severity), routing_key="k")
    assert event["payload"]["severity"] == expected


def test_email_has_plain_and_html_parts_and_threads_the_resolve_on_its_trigger() -> None:
    trigger, resolve = pair("g3", details="<script>x</script>")

    first = format_email(trigger, sender="opsplane@example.com", to=["oncall@example.com"])
    second = format_email(resolve, sender="opsplane@example.com", to=["oncall@example.com"])

    assert first["Subject"] == "[P1] orders: Error rate above 5% for 5m"
    assert first["Message-ID"] == message_id("g3:trigger")
    assert second["In-Reply-To"] == first["References"] == message_id("group:g3")
    plain = first.get_body(("plain",)).get_content()
    html = first.get_body(("html",)).get_content()
    assert "Runbook: https://runbooks.example.com/orders" in plain
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert '<a href="https://runbooks.example.com/orders">Runbook</a>' in html


def test_webhook_signature_covers_timestamp_and_body_and_carries_the_idempotency_key() -> None:
    request = webhook_request(notification(key="k1"), url="http://127.0.0.1/x", secret="s3cret",
                              timestamp=1_700_000_000)

    signature = request.headers["X-Opsplane-Signature"]
    assert request.headers["Idempotency-Key"] == "k1"
    assert signature == sign("s3cret", 1_700_000_000, request.body)
    assert verify("s3cret", "1700000000", request.body, signature, now=1_700_000_100)
    assert not verify("s3cret", "1700000000", request.body + b" ", signature, now=1_700_000_100)
    assert not verify("other", "1700000000", request.body, signature, now=1_700_000_100)
    assert not verify("s3cret", "1700000000", request.body, signature, now=1_700_001_000)  # replay
    assert json.loads(request.body)["key"] == "k1"


def test_console_line_names_severity_service_and_group_with_the_details_beneath() -> None:
    assert format_console(notification(group="g9")) == (
        "[P1] orders: Error rate above 5% for 5m (group g9) runbook: https://runbooks.example.com/orders\n"
        "    5.2% of checkout requests fail")


@pytest.mark.parametrize(("status", "outcome"), [
    (200, Outcome.DELIVERED), (202, Outcome.DELIVERED), (400, Outcome.FAILED), (403, Outcome.FAILED),
    (404, Outcome.FAILED), (408, Outcome.RETRY), (429, Outcome.RETRY), (500, Outcome.RETRY),
    (503, Outcome.RETRY),
])
def test_http_status_decides_delivered_retry_or_failed(status: int, outcome: Outcome) -> None:
    assert classify_status(status).outcome is outcome


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert parse_retry_after("soon") is None
    assert classify_status(429, "12").retry_after == 12.0


def test_backoff_doubles_up_to_the_ceiling_with_jitter_between_half_and_all() -> None:
    policy = RetryPolicy(first=5.0, max=60.0)

    lows = [retry_delay(n, policy, jitter=0.0) for n in range(1, 7)]
    highs = [retry_delay(n, policy, jitter=1.0) for n in range(1, 7)]

    assert lows == [2.5, 5.0, 10.0, 20.0, 30.0, 30.0]
    assert highs == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    assert retry_delay(1, policy, jitter=0.5, retry_after=120.0) == 120.0
    with pytest.raises(ValueError):
        retry_delay(1, policy, jitter=1.5)


def test_digest_lists_held_notifications_in_order_under_a_key_naming_its_rows() -> None:
    items = [notification(severity="P3", summary=f"disk {n}0% full", service="db") for n in (7, 8)]
    digest = build_digest("mail", items, first_id=4, last_id=9, since=T0)

    assert digest.key == "digest:mail:4-9"
    assert digest.group == "digest:mail"
    assert digest.summary == "2 low-severity notifications for db"
    assert digest.details.splitlines()[1:] == ["- db: disk 70% full", "- db: disk 80% full"]
    assert digest.digest_of == tuple(item.key for item in items)


def test_redact_removes_secret_values() -> None:
    assert redact("POST https://hooks.slack.com/T/B/xyz failed", ("https://hooks.slack.com/T/B/xyz",)) \
        == "POST *** failed"


def test_channels_settings_refuse_literal_secrets_and_unknown_types() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="secret reference"):
        ChannelsSettings.model_validate({"named": {"s": {"type": "slack",
                                                         "webhook_url": "https://hooks.slack.com/x"}}})
    with pytest.raises(ValidationError):
        ChannelsSettings.model_validate({"named": {"s": {"type": "sms"}}})
    with pytest.raises(ValidationError, match="without a password"):
        ChannelsSettings.model_validate({"named": {"m": {"type": "email", "host": "h", "sender": "a@b",
                                                         "to": ["c@d"], "username": "u"}}})
