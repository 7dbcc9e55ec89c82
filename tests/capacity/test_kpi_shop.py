"""The KPIs read from the real shop: its four services scraped into a sample store before,
during and after a few seconds of load from the load test's users, then each KPI's PromQL over
that store, and the pools and request rates the capacity worker records. The figures are
checked against what the shop's own /metrics and the users measured."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from opsplane.capacity import loadtest
from opsplane.capacity.kpi import KpiResult, measure
from opsplane.capacity.models import CapacitySettings, resolve_kpis
from opsplane.capacity.readings import Readings, read_all
from opsplane.clock import SystemClock
from opsplane.config.loader import loads
from opsplane.metrics.scrape import MetricsScraper, ScrapeTarget
from opsplane.metrics.store import SampleStore
from opsplane.reports.jobs import JobEnv
from shop.telemetry import LATENCY_BUCKETS
from tests.shop.shopstack import ShopStack, scrape


def cache_counts(url: str) -> tuple[float, float]:
    samples = scrape(url)
    hits = sum(v for (name, labels), v in samples.items()
               if name == "cache_requests_total" and ("result", "hit") in labels)
    total = sum(v for (name, _), v in samples.items() if name == "cache_requests_total")
    return hits, total


def bucket_above(seconds: float) -> float:
    return next((b for b in LATENCY_BUCKETS if b >= seconds), float("inf"))


Measured = tuple[Any, dict[str, KpiResult], tuple[float, float], Readings]


async def load_and_measure(shop: ShopStack) -> Measured:
    """Scrape, load for 3 s, scrape again, and read the KPIs over the scrapes."""
    targets = [ScrapeTarget(name, shop.url(name) + "/metrics", 15.0, 5.0)
               for name in ("gateway", "catalog", "orders", "payments")]
    scraper = MetricsScraper(targets, store=SampleStore(window=3600.0), env="staging")
    try:
        # every route answered once first: a series born between two scrapes has no rate yet
        await loadtest.drive(shop.url("gateway"), users=2, duration=1.0, think_time=0.0, seed=1)
        await asyncio.gather(*(scraper.scrape(t) for t in targets))
        hits, total = cache_counts(shop.url("catalog"))
        load = asyncio.ensure_future(
            loadtest.drive(shop.url("gateway"), users=4, duration=3.0, think_time=0.0, seed=3))
        while not load.done():  # scrapes every half second, as Prometheus would, only faster
            await asyncio.sleep(0.5)
            await asyncio.gather(*(scraper.scrape(t) for t in targets))
        figures = await load
        hits_after, total_after = cache_counts(shop.url("catalog"))
        inventory = loads("platform: {name: shop}\ncapacity: {}\n")
        source = scraper.locked_source()
        env = JobEnv(inventory, Path("."), cast(Any, None), SystemClock(), samples=lambda: source)
        results = measure(resolve_kpis(inventory.capacity), 60.0, env.query)
        readings = read_all(CapacitySettings(disks=[]), base_dir=Path("."), host=None, query=env.query)
    finally:
        await scraper.close()
    return figures, {r.kpi.name: r for r in results}, (hits_after - hits, total_after - total), readings


def test_the_kpis_of_the_real_shop_follow_its_metrics(shop: ShopStack) -> None:
    figures, results, (hits, total), readings = asyncio.run(load_and_measure(shop))
    assert figures.requests > 20 and figures.failed == 0
    api, search, db, cache = (results[n] for n in ("api_p95", "search", "db_query_p95", "cache_hit_rate"))
    # the platform's p95 is under the users' (who add the network), at most one bucket above it
    assert api.value is not None and 0 < api.value <= bucket_above(figures.p95_ms / 1000)
    searched = figures.steps["search"]["p95_ms"] / 1000
    assert search.value is not None and 0 < search.value <= bucket_above(searched)
    # the new statement histogram is scraped: statements are faster than the requests that run them
    assert db.value is not None and 0 < db.value <= api.value
    # the hit rate is the hits over all look-ups the catalog counted during the load (PromQL's
    # rates extrapolate each counter a little past its first and last scrape, each its own way)
    assert total > 0
    assert cache.value == pytest.approx(hits / total, rel=0.05)
    for result in results.values():
        assert result.status in ("met", "missed", "warning", "critical")
    # what the capacity worker records from the same samples: pools in use, request rates
    assert readings.problems == {}
    assert set(readings.values) == {"db_pool:catalog", "db_pool:orders", "requests:gateway",
                                    "requests:catalog", "requests:orders", "requests:payments"}
    assert all(0 <= readings.values[f"db_pool:{s}"] <= 1 for s in ("catalog", "orders"))
    assert readings.values["requests:gateway"] > 0
