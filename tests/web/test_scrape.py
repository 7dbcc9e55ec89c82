"""Scraping: the request counters read from a page, real HTTP targets into the sample store,
and failures as states with reasons."""

from __future__ import annotations

import pytest

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.health.models import State
from opsplane.metrics.promql import Matcher
from opsplane.metrics.scrape import (
    MetricsError,
    MetricsScraper,
    ScrapeTarget,
    request_counts,
    scrape_targets,
)
from opsplane.metrics.store import SampleStore
from tests.support.http_servers import HangingServer, LocalHttpServer, Reply, closed_port


def exposition(ok: float, failed: float, *, extra: str = "") -> bytes:
    return (
        "# HELP http_requests_total Requests served.\n"
        "# TYPE http_requests_total counter\n"
        f'http_requests_total{{method="GET",code="200"}} {ok}\n'
        f'http_requests_total{{method="POST",code="503"}} {failed}\n'
        'http_request_duration_seconds_bucket{le="+Inf"} 7\n'
        f"{extra}"
    ).encode()


# --- pure parts -----------------------------------------------------------------------------


def test_request_counts_sum_every_series_and_pick_out_5xx() -> None:
    counts = request_counts(exposition(120, 8).decode())
    assert counts is not None and (counts.total, counts.server_errors) == (128, 8)
    status_label = 'http_requests_total{status="500"} 2\nhttp_requests_total{status="404"} 3\n'
    assert request_counts(status_label) == type(counts)(5, 2)


def test_metrics_without_the_request_counter_say_so() -> None:
    assert request_counts("process_cpu_seconds_total 3.5\nhttp_requests_totalish 9\n") is None


def test_malformed_request_lines_are_an_error_with_a_reason() -> None:
    with pytest.raises(MetricsError, match="http_requests_total does not parse"):
        request_counts('http_requests_total{code="200" 12\n')


def test_scrape_targets_resolve_base_url_and_path_for_the_environment() -> None:
    inventory = loads("""
platform: {name: shop}
environments: {production: {}, staging: {host: 127.0.0.2}}
services:
  catalog: {port: 8101, metrics_path: /metrics, environments: {staging: {port: 9101}}}
  cart: {url: "http://127.0.0.1:8102/", metrics_path: "prom"}
  search: {port: 8103}
  orphan: {metrics_path: /metrics}
""")
    found = {t.component: t for t in scrape_targets(inventory)}
    assert set(found) == {"catalog", "cart", "orphan"}
    assert found["catalog"].url == "http://127.0.0.1:8101/metrics"
    assert found["cart"].url == "http://127.0.0.1:8102/prom"
    assert found["orphan"].problem == "has metrics_path but neither a url nor a port"
    assert found["catalog"].interval == 30.0
    staging = {t.component: t for t in scrape_targets(inventory, "staging")}
    assert staging["catalog"].url == "http://127.0.0.2:9101/metrics"


# --- against real HTTP servers ----------------------------------------------------------------


def target(url: str, *, timeout: float = 2.0) -> ScrapeTarget:
    return ScrapeTarget("catalog", url, interval=30.0, timeout=timeout)


async def test_scraping_a_live_endpoint_keeps_its_samples_in_the_store() -> None:
    clock = ManualClock()
    store = SampleStore(clock=clock)
    with LocalHttpServer({"/metrics": Reply(body=exposition(1000, 10),
                                            content_type="text/plain; version=0.0.4")}) as server:
        scrape = target(server.url("/metrics"))
        scraper = MetricsScraper([scrape], clock=clock, store=store)
        try:
            status = await scraper.scrape(scrape)
            assert (status.state, status.reason) == (State.OK, "1010 requests counted")
            clock.advance(30)
            server.script.routes["/metrics"] = Reply(body=exposition(1570, 40))
            await scraper.scrape(scrape)
        finally:
            await scraper.close()
        assert [seen.path for seen in server.seen] == ["/metrics"] * 2
    now = clock.now().timestamp()
    found = {dict(labels).get("code"): [value for _, value in samples] for labels, samples in
             store.select([Matcher("__name__", "=", "http_requests_total"),
                           Matcher("service", "=", "catalog")], now - 60, now)}
    assert found == {"200": [1000, 1570], "503": [10, 40]}
    assert scraper.components == {"catalog"}


async def test_an_unreachable_endpoint_is_a_state_with_a_reason() -> None:
    scrape = target(f"http://127.0.0.1:{closed_port()}/metrics")
    scraper = MetricsScraper([scrape], clock=ManualClock())
    try:
        status = await scraper.scrape(scrape)
    finally:
        await scraper.close()
    assert (status.state, status.reason) == (State.CRITICAL, "refuses connections")
    assert scraper.status("catalog") == status


async def test_error_pages_hangs_and_missing_metrics_are_states_too() -> None:
    routes = {"/down": Reply(503, b"overloaded"), "/plain": Reply(body=b"up 1\n"),
              "/broken": Reply(body=b'http_requests_total{code="200" 5\n')}
    with LocalHttpServer(routes) as server, HangingServer() as hanging:
        cases = {
            "/down": (State.CRITICAL, f"HTTP 503 from {server.url('/down')}"),
            "/plain": (State.UNKNOWN, "exposes no http_requests_total"),
            "/broken": (State.CRITICAL, "http_requests_total does not parse"),
        }
        scraper = MetricsScraper([], clock=ManualClock())
        try:
            for path, (state, reason) in cases.items():
                status = await scraper.scrape(target(server.url(path)))
                assert status.state is state, path
                assert status.reason.startswith(reason), (path, status.reason)
            slow = await scraper.scrape(target(hanging.url("/metrics"), timeout=0.3))
            assert (slow.state, slow.reason) == (State.CRITICAL, "no answer within 0.3 s")
        finally:
            await scraper.close()


async def test_run_forever_scrapes_until_cancelled() -> None:
    import asyncio

    with LocalHttpServer({"/metrics": Reply(body=exposition(5, 0))}) as server:
        scrape = ScrapeTarget("catalog", server.url("/metrics"), interval=0.05, timeout=1.0)
        scraper = MetricsScraper([scrape])
        task = asyncio.create_task(scraper.run_forever())
        deadline = asyncio.get_running_loop().time() + 5
        while len(server.seen) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await scraper.close()
        assert len(server.seen) >= 3
        seen = len(server.seen)
        await asyncio.sleep(0.15)
        assert len(server.seen) == seen  # stopped with the task
