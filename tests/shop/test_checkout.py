"""Carts and checkout through the gateway, down to the order row in PostgreSQL."""

from __future__ import annotations

import httpx
import psycopg

from tests.shop.shopstack import ShopStack


def _cart_with(gateway: str, *items: tuple[int, int]) -> str:
    cart = httpx.post(gateway + "/api/carts", timeout=5)
    assert cart.status_code == 201, cart.text
    cart_id: str = cart.json()["id"]
    for product_id, quantity in items:
        added = httpx.post(f"{gateway}/api/carts/{cart_id}/items",
                           json={"product_id": product_id, "quantity": quantity}, timeout=5)
        assert added.status_code == 201, added.text
    return cart_id


def test_checkout_through_the_gateway_writes_a_completed_order_row(shop: ShopStack, shop_database: str,
                                                                   ) -> None:
    gateway = shop.url("gateway")
    prices = {pid: httpx.get(f"{gateway}/api/products/{pid}", timeout=5).json()["price_cents"]
              for pid in (3, 4)}
    cart_id = _cart_with(gateway, (3, 2), (4, 1), (3, 1))

    cart = httpx.get(f"{gateway}/api/carts/{cart_id}", timeout=5).json()
    assert cart["items"] == [
        {"product_id": 3, "quantity": 3, "unit_price_cents": prices[3]},
        {"product_id": 4, "quantity": 1, "unit_price_cents": prices[4]},
    ]
    answer = httpx.post(gateway + "/api/checkout", json={"cart_id": cart_id}, timeout=10)

    assert answer.status_code == 201, answer.text
    order = answer.json()
    assert order["status"] == "completed"
    assert order["total_cents"] == 3 * prices[3] + prices[4]
    with psycopg.connect(shop_database) as conn:
        row = conn.execute("SELECT status, total_cents, cart_id, payment_id FROM orders WHERE id = %s",
                           (order["order_id"],)).fetchone()
    assert row is not None
    assert row[:3] == ("completed", order["total_cents"], cart_id)
    assert row[3] == order["payment_id"] and row[3].startswith("ch_")
    assert httpx.get(f"{gateway}/api/orders/{order['order_id']}", timeout=5).json()["status"] == "completed"


def test_a_cart_is_charged_once(shop: ShopStack) -> None:
    gateway = shop.url("gateway")
    cart_id = _cart_with(gateway, (10, 1))
    assert httpx.post(gateway + "/api/checkout", json={"cart_id": cart_id}, timeout=10).status_code == 201

    again = httpx.post(gateway + "/api/checkout", json={"cart_id": cart_id}, timeout=10)
    more = httpx.post(f"{gateway}/api/carts/{cart_id}/items", json={"product_id": 1}, timeout=5)

    assert again.status_code == 409 and "ordered" in again.json()["detail"]
    assert more.status_code == 409


def test_bad_requests_get_client_errors_naming_the_problem(shop: ShopStack) -> None:
    gateway = shop.url("gateway")
    empty = _cart_with(gateway)

    assert httpx.post(gateway + "/api/checkout", json={"cart_id": empty}, timeout=5).status_code == 422
    assert httpx.post(gateway + "/api/checkout", json={"cart_id": "nope"}, timeout=5).status_code == 404
    unknown = httpx.post(f"{gateway}/api/carts/{empty}/items", json={"product_id": 999_999}, timeout=5)
    assert unknown.status_code == 404 and "999999" in unknown.json()["detail"]
    assert httpx.get(gateway + "/api/products/999999", timeout=5).status_code == 404
    assert httpx.get(gateway + "/api/search", timeout=5).status_code == 422


def test_catalog_pages_and_search_answer_through_the_gateway(shop: ShopStack) -> None:
    gateway = shop.url("gateway")
    first = httpx.get(gateway + "/api/products", timeout=5).json()
    second = httpx.get(gateway + "/api/products?page=2", timeout=5).json()
    hits = httpx.get(gateway + "/api/search?q=wool", timeout=5).json()
    misses = httpx.get(gateway + "/api/search?q=zeppelin", timeout=5).json()

    assert first["total"] >= 200 and first["pages"] == -(-first["total"] // 20)
    assert {p["id"] for p in first["items"]}.isdisjoint(p["id"] for p in second["items"])
    assert hits["total"] > 0 and all("wool" in p["name"].lower() for p in hits["items"])
    assert misses == {"query": "zeppelin", "total": 0, "items": []}
