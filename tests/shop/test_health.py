"""/health reports each dependency, and the service's verdict follows what is down."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from opsplane.drivers.sandbox.redis import TemporaryRedis
from tests.shop.shopstack import ADMIN_TOKEN, ShopStack, put_faults, scrape, start_stack, value
from tests.support.polling import wait_for


def _health(url: str) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(url + "/health", timeout=5)
    return answer.status_code, answer.json()


def test_a_healthy_shop_reports_every_dependency_ok(shop: ShopStack) -> None:
    expected = {"gateway": {"catalog", "orders"}, "catalog": {"database", "cache"},
                "orders": {"database", "payments"}, "payments": set()}
    for service, dependencies in expected.items():
        # Verdicts are reused for a second per hop: an earlier test's fault may still show.
        url = shop.url(service)
        status, body = wait_for(lambda url=url: (found := _health(url))[1]["status"] == "ok" and found)
        assert status == 200, body
        assert body["status"] == "ok" and body["service"] == service and body["version"] == "v2"
        assert set(body["checks"]) == dependencies
        assert all(check["status"] == "ok" and check["latency_ms"] >= 0 for check in body["checks"].values())
        assert isinstance(body["errors"]["ratio_1m"], float)


def test_a_database_outage_makes_the_catalog_down_and_the_gateway_degraded(shop: ShopStack) -> None:
    catalog, gateway = shop.url("catalog"), shop.url("gateway")
    before = scrape(catalog)
    put_faults(catalog, {"outages": ["database"]})

    status, body = wait_for(lambda: (found := _health(catalog))[0] == 503 and found)
    search = httpx.get(catalog + f"/search?q=fresh-{uuid.uuid4().hex[:6]}", timeout=5)
    _, gateway_view = wait_for(lambda: (found := _health(gateway))[1]["checks"]["catalog"]["status"] == "down"
                               and found)

    assert body["status"] == "down"
    assert body["checks"]["database"]["status"] == "down" and "fault" in body["checks"]["database"]["reason"]
    assert body["checks"]["cache"]["status"] == "ok"
    assert search.status_code == 503 and search.json()["dependency"] == "database"
    after = scrape(catalog)
    assert value(after, "search_queries_total", result="error") - value(before, "search_queries_total",
                                                                         result="error") == 1
    assert gateway_view["status"] == "degraded"
    assert "503" in gateway_view["checks"]["catalog"]["reason"]


def test_a_stopped_redis_makes_the_catalog_degraded_but_still_serving(
    shop_database: str, shop_logs: Path, tmp_path: Path,
) -> None:
    with TemporaryRedis(tmp_path / "redis") as redis_server:
        env = {"SHOP_DATABASE_URL": shop_database, "SHOP_REDIS_URL": redis_server.url,
               "SHOP_ADMIN_TOKEN": ADMIN_TOKEN}
        stack = start_stack(("catalog",), env, shop_logs)
        try:
            catalog = stack.url("catalog")
            assert _health(catalog)[1]["status"] == "ok"
            redis_server.stop()

            status, body = wait_for(lambda: (found := _health(catalog))[1]["status"] == "degraded" and found)
            product = httpx.get(catalog + "/products/5", timeout=5)

            assert status == 200
            assert body["checks"]["cache"]["status"] == "down"
            assert body["checks"]["database"]["status"] == "ok"
            assert product.status_code == 200 and product.json()["id"] == 5
            assert value(scrape(catalog), "cache_requests_total", result="error") >= 1
        finally:
            stack.stop()
