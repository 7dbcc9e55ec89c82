"""A failover under the shop's own traffic: the shop's four services reach PostgreSQL through
PgBouncer; checkouts go on through the gateway while `opsplane failover` promotes the standby,
and every order the gateway confirmed is on the new primary."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from opsplane.backup.failover import failover
from opsplane.clock import SystemClock
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.store import Store
from tests.backup.test_failover import Pair, in_recovery, inventory, pair, store  # noqa: F401
from tests.shop.shopstack import ADMIN_TOKEN, start_stack

pytestmark = pytest.mark.slow


@dataclass
class Buyer:
    """Checks out one-item carts through the gateway, one after another; remembers each order
    confirmed and each failure, with the time."""

    gateway: str
    confirmed: list[tuple[str, float]] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.gateway, timeout=10) as client:
            while not self.stopping.is_set():
                try:
                    cart = client.post("/api/carts").json()["id"]
                    client.post(f"/api/carts/{cart}/items", json={"product_id": 3, "quantity": 1})
                    answer = client.post("/api/checkout", json={"cart_id": cart})
                    if answer.status_code == 201 and answer.json()["status"] == "completed":
                        self.confirmed.append((answer.json()["order_id"], time.monotonic()))
                    else:
                        said = f"{answer.status_code} {answer.text[:100]}"
                        self.failures.append((time.monotonic(), said))
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    self.failures.append((time.monotonic(), repr(exc)))
                    time.sleep(0.05)


def test_orders_go_on_through_a_failover_and_none_confirmed_is_lost(
        pair: Pair, store: Store, tmp_path: Path) -> None:  # noqa: F811
    # PgBouncer's `shop` is the cluster's `postgres` database: the shop makes its own orders table
    pair.primary.execute("DROP TABLE orders")
    logs = tmp_path / "logs"
    logs.mkdir()
    with TemporaryRedis(tmp_path / "redis") as redis:
        stack = start_stack(("payments", "catalog", "orders", "gateway"), {
            "SHOP_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{pair.bouncer.port}/shop",
            "SHOP_REDIS_URL": redis.url, "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
            "SHOP_PAYMENT_SUCCESS_RATE": "1", "SHOP_PAYMENT_ERROR_RATE": "0", "SHOP_SEED": "7"}, logs)
        buyer = Buyer(stack.url("gateway"))
        thread = threading.Thread(target=buyer.run, daemon=True)
        try:
            thread.start()
            deadline = time.monotonic() + 30
            while len(buyer.confirmed) < 20:
                assert time.monotonic() < deadline, f"the shop took no orders: {buyer.failures[-3:]}"
                time.sleep(0.1)
            began = time.monotonic()
            report = failover(store, inventory(pair, fence="{how: read-only}"), "shop-db",
                              clock=SystemClock(), actor="cli:test", environ={})
            ended = time.monotonic()
            after = len([1 for _, at in buyer.confirmed if at > ended])
            deadline = time.monotonic() + 30
            while len([1 for _, at in buyer.confirmed if at > ended]) < after + 20:
                assert time.monotonic() < deadline, f"no orders after the failover: {buyer.failures[-3:]}"
                time.sleep(0.1)
        finally:
            buyer.stopping.set()
            thread.join(timeout=20)
            stack.stop()
    assert report.ok, report.as_dict()
    assert not in_recovery(pair.replica) and report.total_seconds < 15
    confirmed = {order for order, _ in buyer.confirmed}
    rows = pair.replica.execute("SELECT id FROM orders WHERE status = 'completed'")
    on_new = {row[0] for row in rows}
    assert confirmed <= on_new, f"{len(confirmed - on_new)} confirmed orders are not on the new primary"
    during = [why for at, why in buyer.failures if began - 1 <= at <= ended + 1]
    assert len(during) <= 2, during  # PgBouncer holds the clients while it switches
