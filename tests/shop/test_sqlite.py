"""The shop on SQLite without Redis, with a payment provider that declines every charge."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.shop.shopstack import ShopStack, scrape, start_stack, value


@pytest.fixture(scope="module")
def declining_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ShopStack, Path]]:
    data_dir = tmp_path_factory.mktemp("shop-sqlite")
    stack = start_stack(("payments", "catalog", "orders", "gateway"), {
        "SHOP_DATA_DIR": str(data_dir), "SHOP_PAYMENT_SUCCESS_RATE": "0", "SHOP_PAYMENT_ERROR_RATE": "0",
    }, data_dir)
    yield stack, data_dir / "shop.db"
    stack.stop()


Shop = tuple[ShopStack, Path]


def test_declined_payments_are_recorded_on_the_order_and_counted(declining_shop: Shop) -> None:
    stack, database = declining_shop
    gateway = stack.url("gateway")
    before = {name: scrape(stack.url(name)) for name in ("orders", "payments")}
    cart_id = httpx.post(gateway + "/api/carts").json()["id"]
    httpx.post(f"{gateway}/api/carts/{cart_id}/items", json={"product_id": 12, "quantity": 1})

    answers = [httpx.post(gateway + "/api/checkout", json={"cart_id": cart_id}, timeout=10) for _ in range(3)]

    assert [a.status_code for a in answers] == [402, 402, 402]  # the cart stays open for another try
    reasons = {a.json()["reason"] for a in answers}
    assert reasons <= {"insufficient_funds", "card_declined", "expired_card", "incorrect_cvc", "do_not_honor"}
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT status, failure_reason FROM orders WHERE cart_id = ?",
                            (cart_id,)).fetchall()
        cart_status = conn.execute("SELECT status FROM carts WHERE id = ?", (cart_id,)).fetchone()[0]
    assert sorted(status for status, _ in rows) == ["payment_failed"] * 3
    assert {reason for _, reason in rows} == reasons
    assert cart_status == "open"
    after = {name: scrape(stack.url(name)) for name in ("orders", "payments")}
    assert value(after["payments"], "payments_total", status="declined") - value(
        before["payments"], "payments_total", status="declined") == 3
    assert value(after["orders"], "orders_total", status="payment_failed") - value(
        before["orders"], "orders_total", status="payment_failed") == 3
    assert value(after["orders"], "orders_total", status="completed") == 0


def test_without_redis_there_is_no_cache_check_and_no_cache_traffic(declining_shop: Shop) -> None:
    stack, _ = declining_shop
    catalog = stack.url("catalog")
    httpx.get(catalog + "/products/1")

    health = httpx.get(catalog + "/health").json()

    assert health["status"] == "ok" and set(health["checks"]) == {"database"}
    assert value(scrape(catalog), "cache_requests_total") == 0


def test_admin_is_refused_when_no_admin_token_is_configured(declining_shop: Shop) -> None:
    stack, _ = declining_shop
    answer = httpx.get(stack.url("gateway") + "/admin/faults", headers={"Authorization": "Bearer anything"})

    assert answer.status_code == 403 and "SHOP_ADMIN_TOKEN" in answer.json()["detail"]
