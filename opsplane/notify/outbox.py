"""`Outbox`: the entry point for every domain that notifies (alerting, incidents, on-call).

    outbox = Outbox(store, inventory.channels)
    outbox.enqueue(Notification(key=..., group=..., summary=...), channels=["ops-slack"], now=now)

or, inside a transaction the caller already holds, `notify.service.enqueue(session, ...)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from opsplane.notify import service
from opsplane.notify.models import ChannelsSettings, Notification
from opsplane.notify.service import Enqueued
from opsplane.store import Store


class Outbox:
    """Queues notifications in the store; a `Dispatcher` delivers them."""

    def __init__(self, store: Store, settings: ChannelsSettings) -> None:
        self.store = store
        self.settings = settings

    def enqueue(self, notification: Notification, *, channels: Iterable[str], now: datetime,
                muted: bool = False) -> list[Enqueued]:
        """Queue `notification` for `channels` in a transaction of its own; see service.enqueue."""
        with self.store.session() as session:
            return service.enqueue(session, notification=notification, channels=list(channels),
                                   settings=self.settings, now=now, muted=muted)

    def counts(self) -> dict[str, int]:
        """Rows by state: pending, held, delivered, failed, dead, digested, withdrawn."""
        with self.store.session() as session:
            return service.count_by_state(session)
