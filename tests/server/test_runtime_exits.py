"""The control plane and the runtime's notices, in process with a runtime that says what the
test tells it: an exit is checked at once and a service given up on fires ServiceNotRunning
without any scrape or earlier failure; a runtime that never says anything changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from opsplane.alerts.state import AlertState
from opsplane.config.loader import loads
from opsplane.drivers.runtime import InstanceStatus, RuntimeNotice
from opsplane.drivers.sandbox.ports import free_port
from opsplane.health.models import State
from opsplane.server import ControlPlane
from opsplane.store import Store
from opsplane.workers import WorkerState
from tests.support.polling import wait_for_async

# Checked once an hour, nothing scraped: only the runtime's notices can explain a check, and
# alerting is not even loaded until something fails.
INVENTORY = """\
platform: {{name: shop}}
defaults: {{interval: 1h, timeout: 1s}}
services:
  payments: {{port: {payments}, criticality: critical, checks: [{{type: tcp}}], run: {{argv: [payments]}}}}
  orders: {{port: {orders}, checks: [{{type: tcp}}], run: {{argv: [orders]}}}}
"""


class ToldRuntime:
    """A runtime whose notices are what the test puts in its queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[RuntimeNotice] = asyncio.Queue()

    async def watch(self) -> AsyncIterator[RuntimeNotice]:
        while True:
            yield await self.queue.get()


def state(**services: str) -> RuntimeNotice:
    return RuntimeNotice("state", instances=tuple(
        InstanceStatus(name, 0, 4000, None, value, None, 0) for name, value in services.items()))


def firing(plane: ControlPlane) -> list[tuple[str, str]]:
    if plane.alerting is None:
        return []
    return [(a.name, a.labels["service"]) for a in plane.alerting.alerts if a.state is AlertState.FIRING]


async def listening() -> asyncio.Server:
    """A TCP port that accepts connections, as a service's process would."""
    return await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)


def port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


async def test_an_exit_is_checked_at_once_and_a_service_given_up_on_fires(tmp_path: Path) -> None:
    payments, orders = await listening(), await listening()
    runtime = ToldRuntime()
    inventory = loads(INVENTORY.format(payments=port(payments), orders=port(orders)))
    plane = ControlPlane(inventory, Store.open(f"sqlite:///{tmp_path}/o.db"), runtime=runtime)
    await plane.start()
    try:
        await runtime.queue.put(state(payments="running", orders="running"))
        # followed afresh: what the runtime runs is checked now, not in an hour
        await wait_for_async(lambda: {"payments/tcp", "orders/tcp"} <= plane.latest.keys(), "both checked")
        assert {r.state for r in plane.latest.values()} == {State.OK}
        assert plane.alerting is None  # nothing scraped, nothing failed: no rules loaded yet

        payments.close()  # the process is gone: its port refuses connections
        await payments.wait_closed()
        await runtime.queue.put(RuntimeNotice("exited", service="payments", instance=0, pid=4000,
                                              exit="signal 9"))
        await wait_for_async(lambda: plane.latest["payments/tcp"].state is State.CRITICAL,
                             "payments checked again")
        await runtime.queue.put(state(payments="failed", orders="backoff"))
        await wait_for_async(lambda: ("ServiceNotRunning", "payments") in firing(plane), "ServiceNotRunning")
        assert plane.alerting is not None
        alert = next(a for a in plane.alerting.alerts if a.name == "ServiceNotRunning")
        assert alert.labels["severity"] == "P0"  # payments is critical
        assert ("ServiceNotRunning", "orders") not in firing(plane)  # a back-off is on its way back

        await runtime.queue.put(state(payments="running", orders="running"))  # `opsplane up`
        await wait_for_async(lambda: ("ServiceNotRunning", "payments") not in firing(plane),
                             "the alert to resolve")
    finally:
        await plane.stop()
        orders.close()


async def test_without_a_word_from_the_runtime_nothing_is_checked_out_of_turn(tmp_path: Path) -> None:
    inventory = loads(INVENTORY.format(payments=free_port(), orders=free_port()))
    plane = ControlPlane(inventory, Store.open(f"sqlite:///{tmp_path}/o.db"), runtime=ToldRuntime())
    await plane.start()
    try:
        await asyncio.sleep(0.5)
        assert plane.latest == {} and plane.alerting is None
        # following a silent runtime is no failure
        assert all(worker.state is WorkerState.RUNNING for worker in plane.workers.health())
    finally:
        await plane.stop()
