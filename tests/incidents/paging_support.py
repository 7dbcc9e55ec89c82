"""What the paging tests share: the channels and contact mapping of a small platform, its
inventory built through the real loader, and short ways to open an incident, run one paging
cycle at a minute after T0, deliver what it queued and read back what the outbox holds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import yaml

from opsplane.config.loader import loads
from opsplane.config.models import Inventory
from opsplane.incidents import paging, service
from opsplane.incidents.models import IncidentsSettings
from opsplane.notify import service as notify
from opsplane.notify.dispatcher import Dispatcher, drivers_from
from opsplane.store import Store
from tests.notify.factories import ScriptedDriver, seeded
from tests.oncall.factories import T0, oncall_data

MINUTE = timedelta(minutes=1)
CHANNELS: dict[str, Any] = {
    "pagerduty": {"type": "pagerduty", "routing_key": "env:PD_KEY"},
    "sms-gateway": {"type": "webhook", "url": "http://127.0.0.1:9/sms"},
    "voice-gateway": {"type": "webhook", "url": "http://127.0.0.1:9/voice"},
    "incidents": {"type": "slack", "webhook_url": "env:SLACK_URL"},
    "ops-mail": {"type": "console"},
}
CONTACTS = {"sms": "sms-gateway", "phone": "voice-gateway", "email": "ops-mail", "slack": "incidents"}


def inventory(channels: dict[str, Any] | None = None, **oncall: Any) -> Inventory:
    """The test platform's inventory: CHANNELS (or `channels`) and the test roster, with the
    `oncall:` section changed by `oncall`."""
    data = {"platform": {"name": "shop"}, "channels": {"named": channels or CHANNELS},
            "oncall": oncall_data(contact_channels=CONTACTS, **oncall)}
    return loads(yaml.safe_dump(data, sort_keys=False), "opsplane.yaml")


def open_incident(store: Store, *, severity: str = "P0", commander: str | None = None) -> int:
    """A new incident on `payments` opened at T0; its id."""
    with store.session() as session:
        row = service.create(session, title="Payments down", service="payments", severity=severity,
                             actor="system:incidents", now=T0, settings=IncidentsSettings(),
                             commander=commander)
        return row.id


def page(store: Store, inventory: Inventory, at: timedelta) -> paging.PagingReport:
    """One paging cycle at T0 + `at`, in its own transaction."""
    with store.session() as session:
        return paging.page(session, inventory=inventory, now=T0 + at)


def deliver(store: Store, inventory: Inventory, at: timedelta) -> None:
    """One dispatcher pass at T0 + `at` whose every receiver takes what it is sent: the pages
    queued so far reach their people (only a page that did is followed by the acknowledge or
    resolve)."""
    drivers = {name: ScriptedDriver(name) for name in inventory.channels.named}
    dispatcher = Dispatcher(store, inventory.channels, opener=drivers_from(drivers), random_source=seeded())
    try:
        dispatcher.run_once(T0 + at)
    finally:
        dispatcher.close()


def rows(store: Store) -> list[tuple[str, str, str | None]]:
    """(channel, key, to) of every outbox row, in queue order."""
    with store.session() as session:
        return [(r.channel, r.key, r.payload.get("to")) for r in notify.get_all(session, limit=1000)]


def keys(store: Store) -> list[str]:
    """The key of every outbox row, in queue order."""
    return [key for _, key, _ in rows(store)]


def statuses(store: Store) -> list[tuple[str, str, str]]:
    """(channel, status, group) of every outbox row, in queue order."""
    with store.session() as session:
        return [(r.channel, r.status, r.group_key) for r in notify.get_all(session, limit=1000)]
