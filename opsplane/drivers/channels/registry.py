"""Opening a configured channel: its driver, with its secrets resolved from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TextIO

from opsplane.clock import Clock
from opsplane.config.types import SecretRef
from opsplane.drivers.channels.base import ChannelDriver
from opsplane.drivers.channels.console import ConsoleDriver
from opsplane.drivers.channels.email import EmailDriver
from opsplane.drivers.channels.pagerduty import PagerDutyDriver
from opsplane.drivers.channels.slack import SlackDriver
from opsplane.drivers.channels.webhook import WebhookDriver
from opsplane.notify.models import (
    Channel,
    ConsoleChannel,
    EmailChannel,
    PagerDutyChannel,
    SlackChannel,
    WebhookChannel,
)


def _env(environ: Mapping[str, str] | None) -> dict[str, str] | None:
    return dict(environ) if environ is not None else None


def _resolve(ref: str | None, environ: Mapping[str, str] | None) -> str | None:
    return None if ref is None else SecretRef(ref).resolve(_env(environ))


def open_channel(
    name: str,
    settings: Channel,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    console: TextIO | None = None,
) -> ChannelDriver:
    """The driver of channel `name`; raises SecretError (naming the reference, never a value)
    when one of its secrets cannot be read."""
    if isinstance(settings, SlackChannel):
        url = SecretRef(settings.webhook_url).resolve(_env(environ))
        return SlackDriver(name, settings, webhook_url=url)
    if isinstance(settings, PagerDutyChannel):
        key = SecretRef(settings.routing_key).resolve(_env(environ))
        return PagerDutyDriver(name, settings, routing_key=key)
    if isinstance(settings, EmailChannel):
        return EmailDriver(name, settings, password=_resolve(settings.password, environ), clock=clock)
    if isinstance(settings, WebhookChannel):
        return WebhookDriver(name, settings, secret=_resolve(settings.secret, environ), clock=clock)
    if isinstance(settings, ConsoleChannel):
        return ConsoleDriver(name, stream=console)
    raise TypeError(f"no driver for channel type {type(settings).__name__}")
