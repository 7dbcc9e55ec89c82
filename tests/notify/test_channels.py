"""Each channel against a real receiver on loopback: HTTP servers that play Slack, PagerDuty
and a webhook endpoint, and a real SMTP server (aiosmtpd) with STARTTLS and login."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsplane.clock import ManualClock
from opsplane.drivers.channels.base import ChannelDriver, Outcome
from opsplane.drivers.channels.registry import open_channel
from opsplane.drivers.channels.webhook import verify
from opsplane.drivers.sandbox.ports import free_port
from opsplane.errors import SecretError
from opsplane.notify.dispatcher import Dispatcher
from opsplane.notify.models import ChannelsSettings
from opsplane.notify.outbox import Outbox
from opsplane.store import Store
from tests.notify.factories import notification, pair
from tests.support.certs import self_signed
from tests.support.http_servers import HangingServer
from tests.support.receivers import Answer, MailServer, RecordingReceiver, always

ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY00"


def _open(name: str, spec: dict[str, object], environ: dict[str, str]) -> ChannelDriver:
    channels = ChannelsSettings.model_validate({"named": {name: spec}})
    return open_channel(name, channels.named[name], environ=environ)


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with RecordingReceiver() as server:
        yield server


def test_slack_posts_blocks_to_the_webhook_url_from_the_environment(receiver: RecordingReceiver) -> None:
    url = receiver.url("/services/T000/B000/XXXX")
    slack = _open("ops", {"type": "slack", "webhook_url": "env:SLACK_URL"}, {"SLACK_URL": url})

    result = slack.send(notification(summary="Checkout failing"))

    assert result.outcome is Outcome.DELIVERED
    [request] = receiver.requests
    assert request.path == "/services/T000/B000/XXXX"
    assert request.headers["content-type"] == "application/json"
    assert request.json()["blocks"][0]["text"]["text"] == "[P1] orders: Checkout failing"


def test_pagerduty_receives_trigger_and_resolve_with_one_dedup_key(receiver: RecordingReceiver) -> None:
    pager = _open("pager", {"type": "pagerduty", "routing_key": "env:PD_KEY",
                            "url": receiver.url("/v2/enqueue")}, {"PD_KEY": ROUTING_KEY})
    trigger, resolve = pair("orders/HighErrorRate")

    outcomes = [pager.send(trigger).outcome, pager.send(resolve).outcome]

    assert outcomes == [Outcome.DELIVERED, Outcome.DELIVERED]
    bodies = [r.json() for r in receiver.requests]
    assert [(b["event_action"], b["dedup_key"], b["routing_key"]) for b in bodies] == [
        ("trigger", "orders/HighErrorRate", ROUTING_KEY), ("resolve", "orders/HighErrorRate", ROUTING_KEY)]


def test_pagerduty_throttling_is_retried_after_what_it_asks() -> None:
    with RecordingReceiver(always(Answer(429, b'{"status":"throttle event"}',
                                         headers=(("Retry-After", "7"),)))) as server:
        pager = _open("pager", {"type": "pagerduty", "routing_key": "env:PD_KEY",
                                "url": server.url("/v2/enqueue")}, {"PD_KEY": ROUTING_KEY})
        result = pager.send(notification())

    assert (result.outcome, result.status, result.retry_after) == (Outcome.RETRY, 429, 7.0)
    assert ROUTING_KEY not in result.detail


def test_a_bad_request_fails_for_good_and_a_server_error_is_retried() -> None:
    with RecordingReceiver(lambda n: Answer(400, b'{"message":"Event object is invalid"}') if n == 0
                           else Answer(502, b"bad gateway")) as server:
        hook = _open("hook", {"type": "webhook", "url": server.url("/in")}, {})
        refused, unavailable = hook.send(notification()), hook.send(notification())

    assert refused.outcome is Outcome.FAILED
    assert refused.detail == 'HTTP 400: {"message":"Event object is invalid"}'
    assert (unavailable.outcome, unavailable.status) == (Outcome.RETRY, 502)


def test_webhook_requests_are_signed_and_carry_the_idempotency_key(receiver: RecordingReceiver) -> None:
    hook = _open("hook", {"type": "webhook", "url": receiver.url("/hooks/opsplane"),
                          "secret": "env:HOOK_SECRET"}, {"HOOK_SECRET": "whsec-123"})

    assert hook.send(notification(key="alert-7:trigger")).outcome is Outcome.DELIVERED

    [request] = receiver.requests
    assert request.headers["idempotency-key"] == "alert-7:trigger"
    assert verify("whsec-123", request.headers["x-opsplane-timestamp"], request.body,
                  request.headers["x-opsplane-signature"], now=time.time())
    assert request.json()["key"] == "alert-7:trigger"


def test_a_receiver_that_never_answers_times_out_and_is_retried() -> None:
    with HangingServer() as server:
        hook = _open("hook", {"type": "webhook", "url": server.url("/in"), "timeout": "200ms"}, {})
        started = time.monotonic()
        result = hook.send(notification())

    assert (result.outcome, result.detail) == (Outcome.RETRY, "timed out")
    assert time.monotonic() - started < 2


def test_a_closed_port_is_retried(free_port: int) -> None:
    hook = _open("hook", {"type": "webhook", "url": f"http://127.0.0.1:{free_port}/in"}, {})
    assert hook.send(notification()).outcome is Outcome.RETRY


def test_a_missing_secret_names_the_reference() -> None:
    with pytest.raises(SecretError, match="env:SLACK_URL"):
        _open("ops", {"type": "slack", "webhook_url": "env:SLACK_URL"}, {})


@pytest.fixture
def mail_cert(tmp_path: Path) -> tuple[Path, Path]:
    files = self_signed(tmp_path, valid_days=30)
    return files.cert_file, files.key_file


def _mail_spec(port: int, **fields: object) -> dict[str, object]:
    spec: dict[str, object] = {"type": "email", "host": "127.0.0.1", "port": port,
                               "sender": "opsplane@example.com", "to": ["oncall@example.com"],
                               "timeout": "5s"}
    spec.update(fields)
    return spec


def test_email_is_sent_over_starttls_with_login_as_plain_text_and_html(mail_cert: tuple[Path, Path]) -> None:
    cert, key = mail_cert
    port = free_port()
    with MailServer(cert, key, port=port, username="alerts", password="smtp-pass") as server:
        mail = _open("mail", _mail_spec(port, ca_file=str(cert), username="alerts",
                                        password="env:SMTP_PASSWORD"), {"SMTP_PASSWORD": "smtp-pass"})
        result = mail.send(notification(summary="Disk 91% full", service="db"))

    assert result.outcome is Outcome.DELIVERED, result.detail
    [message] = server.messages
    assert server.envelopes == [("opsplane@example.com", ["oncall@example.com"])]
    assert message["Subject"] == "[P1] db: Disk 91% full"
    assert "Runbook: https://runbooks.example.com/orders" in message.get_body(("plain",)).get_content()
    assert "<h2>[P1] db: Disk 91% full</h2>" in message.get_body(("html",)).get_content()


def test_a_wrong_smtp_password_fails_for_good_without_repeating_it(mail_cert: tuple[Path, Path]) -> None:
    cert, key = mail_cert
    port = free_port()
    with MailServer(cert, key, port=port, username="alerts", password="smtp-pass"):
        mail = _open("mail", _mail_spec(port, ca_file=str(cert), username="alerts",
                                        password="env:SMTP_PASSWORD"), {"SMTP_PASSWORD": "wrong-pass"})
        result = mail.send(notification())

    assert result.outcome is Outcome.FAILED
    assert result.status == 535 and "wrong-pass" not in result.detail


def test_an_email_page_to_one_person_goes_to_that_address_only(mail_cert: tuple[Path, Path]) -> None:
    cert, key = mail_cert
    port = free_port()
    with MailServer(cert, key, port=port) as server:
        mail = _open("mail", _mail_spec(port, ca_file=str(cert)), {})
        result = mail.send(notification(to="ana@example.com"))

    assert result.outcome is Outcome.DELIVERED, result.detail
    assert server.envelopes == [("opsplane@example.com", ["ana@example.com"])]


def test_an_untrusted_smtp_certificate_fails_and_says_to_set_ca_file(mail_cert: tuple[Path, Path]) -> None:
    cert, key = mail_cert
    port = free_port()
    with MailServer(cert, key, port=port) as server:
        result = _open("mail", _mail_spec(port), {}).send(notification())

    assert result.outcome is Outcome.FAILED
    assert "ca_file" in result.detail
    assert server.messages == []


def test_an_smtp_server_that_is_down_is_retried() -> None:
    result = _open("mail", _mail_spec(free_port()), {}).send(notification())
    assert result.outcome is Outcome.RETRY


def test_a_webhook_url_secret_that_is_not_a_url_fails_without_showing_it() -> None:
    slack = _open("ops", {"type": "slack", "webhook_url": "env:SLACK_URL"}, {"SLACK_URL": "xoxb-not-a-url"})

    result = slack.send(notification())

    assert result.outcome is Outcome.FAILED
    assert "xoxb" not in result.detail


def test_without_starttls_the_server_refuses_the_mail(mail_cert: tuple[Path, Path]) -> None:
    cert, key = mail_cert
    port = free_port()
    with MailServer(cert, key, port=port) as server:
        result = _open("mail", _mail_spec(port, starttls=False), {}).send(notification())

    assert (result.outcome, result.status) == (Outcome.FAILED, 530)
    assert server.messages == []


def test_p3_notifications_reach_the_mailbox_as_one_digest(
    mail_cert: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = mail_cert
    port = free_port()
    settings = ChannelsSettings.model_validate({"digest_interval": "1h", "named": {
        "ops-team": _mail_spec(port, ca_file=str(cert))}})
    store = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    clock = ManualClock()
    outbox = Outbox(store, settings)
    for summary in ("disk 80% full", "certificate expires in 20 days", "backup took 2x longer"):
        outbox.enqueue(notification(severity="P3", summary=summary, service="db"), channels=["ops-team"],
                       now=clock.now())
        clock.advance(60)
    with MailServer(cert, key, port=port) as server:
        dispatcher = Dispatcher(store, settings)
        dispatcher.run_once(clock.now())
        held_back = list(server.messages)
        clock.advance(3600)
        dispatcher.run_once(clock.now())
        dispatcher.close()
    store.close()

    assert held_back == []
    [digest] = server.messages
    assert digest["Subject"] == "[P3] 3 low-severity notifications for db"
    body = digest.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert "- db: disk 80% full\n- db: certificate expires in 20 days\n- db: backup took 2x longer" in body
