"""Fault injection as an operator uses it: through /admin/faults (or SHOP_FAULTS at start),
observed from outside the process."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.shop.shopstack import (
    ADMIN_TOKEN,
    ShopStack,
    admin_headers,
    put_faults,
    scrape,
    start_stack,
    value,
)
from tests.support.polling import wait_for

CHARGE = {"order_id": "o-1", "amount_cents": 1999}


def _charge(url: str, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(url + "/charges", json=CHARGE, timeout=timeout)


def test_admin_refuses_a_missing_or_wrong_token(payments: ShopStack) -> None:
    url = payments.url("payments") + "/admin/faults"

    missing = httpx.put(url, json={"latency_ms": {"*": 10}})
    wrong = httpx.put(url, json={"latency_ms": {"*": 10}}, headers=admin_headers("not-the-token"))
    scheme = httpx.get(url, headers={"Authorization": f"Basic {ADMIN_TOKEN}"})

    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 403
    assert scheme.status_code == 401
    assert httpx.get(url, headers=admin_headers()).json()["latency_ms"] == {}


def test_fault_plans_with_unknown_fields_routes_or_dependencies_are_rejected(payments: ShopStack) -> None:
    url = payments.url("payments") + "/admin/faults"
    for plan in ({"latency": {"*": 10}}, {"error_ratio": {"*": 1.5}}, {"crash": {"after": 1}},
                 {"error_ratio": {"/nope": 0.5}}, {"outages": ["database"]}):
        answer = httpx.put(url, json=plan, headers=admin_headers())
        assert answer.status_code == 422, plan
    problems = httpx.put(url, json={"error_ratio": {"/nope": 0.5}}, headers=admin_headers()).json()["detail"]
    assert "unknown route '/nope'" in problems[0] and "/charges" in problems[0]


def test_a_ten_percent_error_ratio_gives_about_ten_percent_5xx(payments: ShopStack) -> None:
    url = payments.url("payments")
    before = scrape(url)
    put_faults(url, {"error_ratio": {"/charges": 0.1}})

    with httpx.Client(base_url=url, timeout=5) as client:
        statuses = [client.post("/charges", json=CHARGE).status_code for _ in range(400)]
    status_after, health = (lambda r: (r.status_code, r.json()))(httpx.get(url + "/health"))

    failed = statuses.count(500)
    assert set(statuses) == {201, 500}
    assert 20 <= failed <= 60, failed
    after = scrape(url)
    counted = (value(after, "http_requests_total", route="/charges", status="500")
               - value(before, "http_requests_total", route="/charges", status="500"))
    assert counted == failed
    assert status_after == 200  # /health itself is exempt from a fault on another route
    assert health["errors"]["ratio_1m"] == pytest.approx(failed / 400, abs=0.02)
    # The operational routes are not subject to the fault.
    assert all(httpx.get(url + "/metrics").status_code == 200 for _ in range(20))


def test_latency_is_added_to_the_named_route_only(payments: ShopStack) -> None:
    url = payments.url("payments")
    put_faults(url, {"latency_ms": {"/charges": 300}})

    started = time.perf_counter()
    slow = _charge(url)
    slow_seconds = time.perf_counter() - started
    started = time.perf_counter()
    httpx.get(url + "/version")
    fast_seconds = time.perf_counter() - started

    assert slow.status_code == 201
    assert slow_seconds >= 0.3
    assert fast_seconds < 0.3


def test_a_hang_holds_requests_until_the_fault_is_cleared(payments: ShopStack) -> None:
    url = payments.url("payments")
    put_faults(url, {"hang": ["*"]})

    with pytest.raises(httpx.ReadTimeout):
        _charge(url, timeout=0.5)
    held: list[int] = []
    waiter = threading.Thread(target=lambda: held.append(_charge(url, timeout=20).status_code))
    waiter.start()
    time.sleep(0.3)
    assert not held
    assert httpx.get(url + "/health", timeout=2).status_code == 200  # operational routes still answer
    httpx.delete(url + "/admin/faults", headers=admin_headers(), timeout=2)
    waiter.join(10)

    assert held == [201]


def test_memory_growth_grows_the_rss_until_cleared(payments: ShopStack) -> None:
    url = payments.url("payments")
    process = psutil.Process(payments.services["payments"].process.pid)
    baseline = process.memory_info().rss
    put_faults(url, {"memory_growth": {"mb_per_second": 200}})

    wait_for(lambda: process.memory_info().rss > baseline + 150e6, timeout=10)
    httpx.delete(url + "/admin/faults", headers=admin_headers())

    wait_for(lambda: process.memory_info().rss < baseline + 60e6, timeout=10)


def test_a_crash_fault_from_the_environment_ends_the_process_after_n_requests(shop_logs: Path) -> None:
    stack = start_stack(("payments",), {
        "SHOP_ADMIN_TOKEN": ADMIN_TOKEN, "SHOP_FAULTS": '{"crash": {"after_requests": 3, "exit_code": 42}}',
        "SHOP_PAYMENT_SUCCESS_RATE": "1", "SHOP_PAYMENT_ERROR_RATE": "0",
    }, shop_logs)
    process = stack.services["payments"].process
    try:
        url = stack.url("payments")
        assert httpx.get(url + "/admin/faults", headers=admin_headers()).json()["crash"] == {
            "after_requests": 3, "exit_code": 42}
        answers = [_charge(url, timeout=15).status_code for _ in range(3)]

        assert process.wait(15) == 42, stack.services["payments"].log_tail()
        assert answers == [201, 201, 201]
    finally:
        stack.stop()


def test_a_crash_fault_set_through_admin_exits_at_once(shop_logs: Path) -> None:
    stack = start_stack(("payments",), {"SHOP_ADMIN_TOKEN": ADMIN_TOKEN}, shop_logs)
    try:
        put_faults(stack.url("payments"), {"crash": {}})
        assert stack.services["payments"].process.wait(10) == 1
    finally:
        stack.stop()


def test_an_invalid_shop_faults_variable_stops_the_start_with_exit_code_3(shop_logs: Path) -> None:
    with pytest.raises(AssertionError, match="exited with 3"):
        start_stack(("payments",), {"SHOP_FAULTS": '{"hang": ["/missing"]}'}, shop_logs)


def test_a_payments_outage_fails_checkouts_and_leaves_the_cart_open(shop: ShopStack) -> None:
    gateway, orders = shop.url("gateway"), shop.url("orders")
    before = scrape(orders)
    cart_id = httpx.post(gateway + "/api/carts").json()["id"]
    httpx.post(f"{gateway}/api/carts/{cart_id}/items", json={"product_id": 9})
    put_faults(orders, {"outages": ["payments"]})

    failed = httpx.post(gateway + "/api/checkout", json={"cart_id": cart_id}, timeout=10)
    health = wait_for(lambda: (body := httpx.get(orders + "/health").json())["status"] == "degraded" and body)
    httpx.delete(orders + "/admin/faults", headers=admin_headers())
    retried = httpx.post(gateway + "/api/checkout", json={"cart_id": cart_id}, timeout=10)

    assert failed.status_code == 502
    assert failed.json()["status"] == "failed" and "payments unavailable" in failed.json()["reason"]
    assert health["checks"]["payments"]["status"] == "down"
    assert retried.status_code == 201
    after = scrape(orders)
    assert value(after, "orders_total", status="failed") - value(before, "orders_total", status="failed") == 1
