"""Every metric the shop promises is exported and moves with the traffic that should move it."""

from __future__ import annotations

import uuid

import httpx

from shop import SERVICES
from shop.middleware import UNMATCHED
from tests.shop.shopstack import ShopStack, names, scrape, value

GENERIC = {"http_requests_total", "http_request_duration_seconds_bucket",
           "http_request_duration_seconds_count", "http_request_duration_seconds_sum", "build_info"}


def test_every_service_exports_the_generic_metrics_with_its_version(shop: ShopStack) -> None:
    for service in SERVICES:
        answer = httpx.get(shop.url(service) + "/version")
        samples = scrape(shop.url(service))
        assert GENERIC <= names(samples), service
        assert value(samples, "build_info", service=service, version="v2") == 1
        assert answer.json() == {"service": service, "version": "v2"}
        assert answer.headers["x-version"] == "v2"
        # every request series names the release that answered it
        request_series = [dict(labels) for name, labels in samples
                          if name in GENERIC - {"build_info"}]
        assert request_series and all(labels["version"] == "v2" for labels in request_series), service


def test_a_checkout_moves_the_request_and_business_metrics(shop: ShopStack) -> None:
    before = {service: scrape(shop.url(service)) for service in SERVICES}
    gateway = shop.url("gateway")
    cart_id = httpx.post(gateway + "/api/carts").json()["id"]
    httpx.post(f"{gateway}/api/carts/{cart_id}/items", json={"product_id": 7, "quantity": 2})
    assert httpx.post(gateway + "/api/checkout", json={"cart_id": cart_id}).status_code == 201
    httpx.get(gateway + "/api/search?q=oak")
    httpx.get(gateway + f"/api/search?q=nothing-{uuid.uuid4().hex[:8]}")
    after = {service: scrape(shop.url(service)) for service in SERVICES}

    def moved(service: str, name: str, **labels: str) -> float:
        return value(after[service], name, **labels) - value(before[service], name, **labels)

    route = "/api/checkout"
    assert moved("gateway", "http_requests_total", route=route, method="POST", status="201") == 1
    assert moved("gateway", "http_request_duration_seconds_count", route=route, method="POST") == 1
    assert moved("gateway", "http_request_duration_seconds_bucket", route=route, le="+Inf") == 1
    assert moved("orders", "http_requests_total", route="/carts/{cart_id}/items", status="201") == 1
    assert moved("payments", "http_requests_total", route="/charges", status="201") == 1
    assert moved("orders", "orders_total", status="completed") == 1
    assert moved("payments", "payments_total", status="succeeded") == 1
    assert moved("catalog", "search_queries_total", result="empty") == 1
    assert moved("catalog", "search_queries_total", result="hit") == 1
    assert moved("catalog", "cache_requests_total") >= 2
    for service in ("catalog", "orders"):
        assert value(after[service], "db_pool_size", service=service) == 10
        assert 0 <= value(after[service], "db_pool_connections_in_use", service=service) <= 20
    # Label values are route templates, never raw paths with ids in them.
    assert not any(cart_id in dict(labels).get("route", "") for _, labels in after["orders"])


def test_unknown_paths_share_one_route_label(shop: ShopStack) -> None:
    for suffix in ("a", "b"):
        assert httpx.get(shop.url("catalog") + f"/no/such/{suffix}").status_code == 404
    samples = scrape(shop.url("catalog"))
    assert value(samples, "http_requests_total", route=UNMATCHED, status="404") >= 2


def test_cache_hits_and_misses_move_with_redis(shop: ShopStack, shop_redis) -> None:  # type: ignore[no-untyped-def]
    client = shop_redis.client()
    client.flushdb()
    client.close()
    catalog = shop.url("catalog")
    before = scrape(catalog)

    first = httpx.get(catalog + "/products/42")
    second = httpx.get(catalog + "/products/42")
    httpx.get(catalog + "/search?q=linen")
    httpx.get(catalog + "/search?q=linen")
    after = scrape(catalog)

    assert first.json() == second.json()
    def moved(result: str) -> float:
        return value(after, "cache_requests_total", result=result) - value(before, "cache_requests_total",
                                                                           result=result)

    assert (moved("miss"), moved("hit"), moved("error")) == (2, 2, 0)
    client = shop_redis.client()
    assert client.ttl("shop:product:42") > 0
    client.close()
