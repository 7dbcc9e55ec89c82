"""Names whose lookup hangs starve nothing: while checks of six such names wait for their
lookups, a check of localhost stays OK and a state change is written at once.

Only loopback may be contacted, so the slow names are slow by the resolver's seam: its lookup
function hangs for 5 s on them, as a resolver whose DNS server never answers does, and asks the
system for any other name (localhost, from /etc/hosts). Six is how many threads asyncio's
default executor has on a 2-core machine; the test uses as many as that executor has here.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

from sqlalchemy import select

from opsplane.config.loader import loads
from opsplane.drivers.probes.resolve import AddressInfo, Resolver, system_lookup
from opsplane.health.models import State
from opsplane.health.tables import CheckState
from opsplane.server import ControlPlane
from opsplane.store import Store
from tests.support.polling import wait_for_async

HANG = 5.0
SLOW_NAMES = min(32, (os.cpu_count() or 1) + 4)  # the default executor's threads


class HangingDns:
    """A lookup that hangs for HANG seconds on *.slow.test and then fails, as an unanswered
    DNS query does; other names are the system's."""

    def __init__(self) -> None:
        self.asked: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, host: str) -> list[AddressInfo]:
        with self._lock:
            self.asked.add(host)
        if host.endswith(".slow.test"):
            time.sleep(HANG)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return system_lookup(host)


def inventory(alive: int, flipping: int) -> str:
    slow = "".join(f"  slow{i}: {{host: db{i}.slow.test, port: 5432, checks: [{{type: tcp}}]}}\n"
                   for i in range(SLOW_NAMES))
    return (
        "platform: {name: shop}\n"
        "defaults: {interval: 1s, timeout: 1s}\n"
        "services:\n"
        f"  web: {{host: localhost, port: {alive}, checks: [{{type: tcp}}]}}\n"
        f"  cart: {{host: 127.0.0.1, port: {flipping}, checks: [{{type: tcp}}]}}\n"
        + slow
    )


async def listening() -> asyncio.Server:
    return await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)


def port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def stored_state(store: Store, check_id: str) -> str | None:
    with store.session() as session:
        return session.scalar(select(CheckState.state).where(CheckState.check_id == check_id))


async def test_hanging_lookups_delay_neither_other_checks_nor_the_store(tmp_path: Path) -> None:
    web, cart = await listening(), await listening()
    dns = HangingDns()
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    plane = ControlPlane(loads(inventory(port(web), port(cart))), store, flush_interval=0.05,
                         resolver=Resolver(dns))
    await plane.start()
    try:
        slow = {f"db{i}.slow.test" for i in range(SLOW_NAMES)}
        await wait_for_async(lambda: slow <= dns.asked, "every slow name to be asked", timeout=3)
        # The lookups now hang for HANG seconds. Meanwhile, cart stops answering: its state
        # change is written while they hang.
        cart.close()
        await cart.wait_closed()
        await wait_for_async(lambda: plane.latest["cart/tcp"].state is State.CRITICAL,
                             "cart to be found down", timeout=3)
        found_down = time.monotonic()
        await wait_for_async(lambda: stored_state(store, "cart/tcp") == "CRITICAL",
                             "cart's state change to be written", timeout=HANG)
        written_after = time.monotonic() - found_down
        # Every result of the localhost check while the lookups hang is OK.
        seen = []
        until = time.monotonic() + 2.5
        while time.monotonic() < until:
            seen.append((plane.checked_at["web/tcp"], plane.latest["web/tcp"]))
            await asyncio.sleep(0.05)
        slow_result = plane.latest["slow0/tcp"]
    finally:
        await plane.stop()
        web.close()
        store.close()
    assert written_after < 1.0, f"the state change waited {written_after:.1f} s to be written"
    results = {at: result for at, result in seen}
    assert len(results) >= 2, "the localhost check stopped running"
    assert {r.state for r in results.values()} == {State.OK}, [r.reason for r in results.values()]
    assert (slow_result.state, slow_result.reason) == (
        State.CRITICAL, "name lookup for db0.slow.test timed out after 1 s — db0.slow.test:5432")

