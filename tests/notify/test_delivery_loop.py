"""`serve`'s delivery loop while a receiver is down: it sleeps until the next retry falls due
instead of running pass after pass."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import event

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.events import service as events
from opsplane.notify.models import Notification
from opsplane.notify.outbox import Outbox
from opsplane.server import ControlPlane
from opsplane.store import Store
from tests.support.polling import wait_for

INVENTORY = """
platform: {name: shop}
services:
  orders: {port: 8001}
channels:
  named:
    voice: {type: webhook, url: "http://127.0.0.1:%d/calls"}
"""


def _attempted(store: Store) -> bool:
    with store.session() as session:
        return bool(events.get_all(session, kind="notify.retry"))


async def test_the_delivery_loop_sleeps_while_the_only_receiver_refuses_every_call(
    tmp_path: Path, free_port: int,
) -> None:
    clock = ManualClock()
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    plane = ControlPlane(loads(INVENTORY % free_port), store, clock=clock)  # nothing listens there
    outbox = Outbox(store, plane.inventory.channels)
    # a call, and its acknowledgement that must wait behind it
    outbox.enqueue(Notification(key="call:ana", group="incident:7", to="ana", summary="INC-7"),
                   channels=["voice"], now=clock.now())
    outbox.enqueue(Notification(key="ack:ana", group="incident:7", to="ana", status="acknowledge",
                                summary="INC-7"), channels=["voice"], now=clock.now())
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: statements.append(statement))

    loops = [plane.worker("incidents"), plane.worker("notify")]  # paging and the dispatcher
    for loop in loops:
        await loop.start()
    try:
        await asyncio.to_thread(wait_for, lambda: _attempted(store), "the first call to be refused")
        before = len(statements)
        # the injected clock stands still, so the retry is seconds away for the whole of this
        # second of real time: a loop that sleeps until it runs nothing meanwhile
        await asyncio.sleep(1.0)
        during = len(statements) - before
    finally:
        for loop in reversed(loops):
            await loop.stop()
        store.close()

    assert during <= 10, f"{during} statements in one second while nothing could be sent"
