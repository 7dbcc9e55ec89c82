"""`runtime.*` events, written to the store from a thread of their own.

The supervisor must restart a crashed instance even while the database is slow or down, so
it only queues events; the writer thread opens the store on first use, writes in batches and
keeps what it could not write for the next attempt.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsplane.clock import Clock, SystemClock
from opsplane.drivers.runtime.releases import base_service

log = logging.getLogger("opsplane.runtime")

_RETRY_SECONDS = 1.0
_MAX_PENDING = 10_000


@dataclass(frozen=True)
class RuntimeEvent:
    kind: str
    service: str
    outcome: str
    actor: str
    ts: datetime
    details: dict[str, Any] = field(default_factory=dict)


def write_events(url: str | None, events: list[RuntimeEvent]) -> None:
    """Write `events` to the store at `url` (default: the store opsplane uses) in one transaction."""
    from opsplane.events.service import record
    from opsplane.store import Store

    store = Store.open(url)
    try:
        _write(store, events, record)
    finally:
        store.close()


def _write(store: Any, events: list[RuntimeEvent], record: Any) -> None:
    """The event's target is the group (`catalog`, or a track such as `catalog@v2`), its service
    the component, so a service's events include its tracks'."""
    with store.session() as session:
        for event in events:
            record(session, kind=event.kind, actor=event.actor, target=event.service,
                   service=base_service(event.service), outcome=event.outcome, details=event.details,
                   ts=event.ts)


class EventRecorder:
    """Queues events and writes them from a worker thread; `close` waits for the queue to empty."""

    def __init__(self, url: str | None, *, clock: Clock | None = None) -> None:
        self.url = url
        self.clock = clock or SystemClock()
        self._queue: queue.Queue[RuntimeEvent | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="runtime-events", daemon=True)
        self._thread.start()

    def record(self, kind: str, *, service: str, outcome: str, actor: str,
               details: dict[str, Any] | None = None) -> None:
        if self._queue.qsize() >= _MAX_PENDING:
            log.error("event queue full, dropping %s for %s", kind, service)
            return
        self._queue.put(RuntimeEvent(kind, service, outcome, actor, self.clock.now(), details or {}))

    def close(self, timeout: float = 10.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        from opsplane.events.service import record
        from opsplane.store import Store

        store = None
        pending: list[RuntimeEvent] = []
        closing = False
        while not (closing and not pending):
            if not closing:
                closing = self._collect(pending, block=not pending)
            if not pending:
                continue
            try:
                if store is None:
                    store = Store.open(self.url)
                _write(store, pending, record)
                pending.clear()
            except Exception as exc:  # noqa: BLE001 - a store failure must not stop supervision
                log.error("cannot write %d runtime events to the store: %s", len(pending), exc)
                if closing:
                    break
                threading.Event().wait(_RETRY_SECONDS)
        if store is not None:
            store.close()

    def _collect(self, pending: list[RuntimeEvent], *, block: bool) -> bool:
        """Move queued events into `pending`; True once the closing marker was seen."""
        try:
            item = self._queue.get(block=block, timeout=0.5 if block else None)
        except queue.Empty:
            return False
        while True:
            if item is None:
                return True
            pending.append(item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return False
