"""The inventory's `channels:` section: loaded with the rest, problems located in the file."""

from __future__ import annotations

import pytest

from opsplane.config.loader import loads
from opsplane.errors import ConfigError
from opsplane.notify.models import EmailChannel, PagerDutyChannel, SlackChannel

INVENTORY = """\
platform: {name: shop}
channels:
  digest_interval: 30m
  named:
    alerts:
      type: slack
      webhook_url: env:SLACK_ALERTS_WEBHOOK
    pagerduty:
      type: pagerduty
      routing_key: file:/run/secrets/pd-routing-key
    ops-team:
      type: email
      host: smtp.example.com
      username: opsplane
      password: env:SMTP_PASSWORD
      sender: opsplane@example.com
      to: [ops-team@example.com]
"""


def test_channels_load_with_their_defaults() -> None:
    channels = loads(INVENTORY).channels

    assert channels.digest_interval == 1800
    assert isinstance(channels.named["alerts"], SlackChannel)
    pagerduty = channels.named["pagerduty"]
    assert isinstance(pagerduty, PagerDutyChannel)
    assert (pagerduty.url, pagerduty.rate_per_minute, pagerduty.digest) == (
        "https://events.pagerduty.com/v2/enqueue", 120, False)
    mail = channels.named["ops-team"]
    assert isinstance(mail, EmailChannel) and (mail.port, mail.starttls) == (587, True)


def test_a_literal_secret_is_refused_at_its_line_without_repeating_it() -> None:
    text = INVENTORY.replace("env:SLACK_ALERTS_WEBHOOK", "https://hooks.slack.com/services/T0/B0/abc")

    with pytest.raises(ConfigError) as caught:
        loads(text, "opsplane.yaml")

    message = str(caught.value)
    assert "opsplane.yaml:7" in message and "secret reference" in message
    assert "hooks.slack.com" not in message


def test_an_inventory_without_channels_has_none() -> None:
    assert loads("platform: {name: shop}\n").channels.named == {}


def test_an_unknown_channel_type_lists_the_known_ones_at_its_line() -> None:
    text = INVENTORY.replace("type: slack", "type: sms")

    with pytest.raises(ConfigError) as caught:
        loads(text, "opsplane.yaml")

    assert "opsplane.yaml:6" in str(caught.value)
    assert "unknown channel type 'sms'; one of slack, pagerduty, email, webhook, console" in str(caught.value)
