"""Notifications, channel settings and dispatchers for the notification tests, built fresh each time."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

from opsplane.drivers.channels.base import Outcome, SendResult
from opsplane.notify.models import ChannelsSettings, Notification

_keys = itertools.count(1)


def notification(**fields: Any) -> Notification:
    """A P1 trigger for the orders service with a fresh key; `fields` override."""
    number = next(_keys)
    data: dict[str, Any] = {
        "key": f"alert-{number}:trigger", "group": f"alert-{number}", "severity": "P1",
        "summary": "Error rate above 5% for 5m", "service": "orders",
        "details": "5.2% of checkout requests fail", "runbook": "https://runbooks.example.com/orders",
        "links": [{"text": "Dashboard", "href": "https://opsplane.example.com/ui/services/orders"}],
    }
    data.update(fields)
    return Notification.model_validate(data)


def pair(group: str, **fields: Any) -> tuple[Notification, Notification]:
    """A trigger and its resolve for one group."""
    trigger = notification(key=f"{group}:trigger", group=group, **fields)
    resolve = notification(key=f"{group}:resolve", group=group, status="resolve", **fields)
    return trigger, resolve


def settings(named: dict[str, dict[str, Any]] | None = None, **fields: Any) -> ChannelsSettings:
    """Channels settings; by default one console channel named `console`."""
    data: dict[str, Any] = {"named": named or {"console": {"type": "console"}}}
    data.update(fields)
    return ChannelsSettings.model_validate(data)


class ScriptedDriver:
    """A plain test double of a channel driver: answers from `script` and records what it got."""

    def __init__(self, name: str, script: Callable[[Notification], SendResult] | None = None) -> None:
        self.name = name
        self.sent: list[Notification] = []
        self._script = script or (lambda n: SendResult(Outcome.DELIVERED, "ok"))

    def send(self, notification: Notification) -> SendResult:
        self.sent.append(notification)
        return self._script(notification)

    def close(self) -> None:
        pass


def seeded() -> Callable[[], float]:
    return random.Random(7).random
