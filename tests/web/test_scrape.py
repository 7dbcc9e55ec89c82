"""Request rates from scraped counters: parsing, counter resets, real HTTP targets, failures."""

from __future__ import annotations

import pytest

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.health.models import State
from opsplane.metrics.scrape import (
    MetricsError,
    MetricsScraper,
    ScrapeTarget,
    bucket_rates,
    increase,
    request_counts,
    scrape_targets,
)
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


def test_a_counter_that_goes_down_was_reset_and_counts_from_zero() -> None:
    assert increase(100, 130) == 30
    assert increase(130, 20) == 20  # restarted and served 20 since


def test_bucket_rates_handle_a_counter_reset_inside_the_window() -> None:
    # scrapes every 30 s into 60 s buckets; the process restarts between t=120 and t=150
    times = [0, 30, 60, 90, 120, 150, 180, 210]
    values = [0, 300, 600, 900, 1200, 150, 450, 750]
    rates = bucket_rates(times, values, first_bucket=0, width=60, size=4)
    # bucket 2 holds the pairs ending at 120 (+300) and 150 (reset: +150): 450 in 60 s = 7.5/s
    assert rates == pytest.approx([10.0, 10.0, 7.5, 10.0])


def test_bucket_rates_leave_gaps_where_samples_are_missing() -> None:
    times = [0, 30, 60, 400, 430]
    values = [0, 60, 120, 800, 860]
    rates = bucket_rates(times, values, first_bucket=0, width=60, size=8, max_gap=90)
    assert rates[0] == pytest.approx(2.0)
    assert rates[1] == pytest.approx(2.0)
    assert rates[2:6] == [None, None, None, None]  # nothing scraped, and the 340 s jump is left out
    assert rates[7] == pytest.approx(2.0)


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


async def test_scraping_a_live_endpoint_gives_the_request_rate_per_bucket() -> None:
    clock = ManualClock()
    clock.advance(60 - clock.monotonic() % 60)
    with LocalHttpServer({"/metrics": Reply(body=exposition(1000, 10),
                                            content_type="text/plain; version=0.0.4")}) as server:
        scrape = target(server.url("/metrics"))
        scraper = MetricsScraper([scrape], clock=clock, window=600, bucket=60)
        try:
            status = await scraper.scrape(scrape)
            assert status.state is State.OK
            clock.advance(30)
            server.script.routes["/metrics"] = Reply(body=exposition(1570, 40))  # +600 in 30 s, 30 5xx
            await scraper.scrape(scrape)
            clock.advance(30)
            server.script.routes["/metrics"] = Reply(body=exposition(30, 0))  # restarted
            await scraper.scrape(scrape)
        finally:
            await scraper.close()
        assert [seen.path for seen in server.seen] == ["/metrics"] * 3
    rates = scraper.request_rates("catalog")
    assert rates is not None and len(rates.requests) == 10
    assert rates.requests[-2] == pytest.approx(20.0)  # 600 requests in 30 s
    assert rates.server_errors[-2] == pytest.approx(1.0)  # 30 of them 5xx
    assert rates.requests[-1] == pytest.approx(1.0)  # the reset: 30 since the restart, in 30 s
    assert rates.latest == pytest.approx(1.0)
    assert rates.requests[:-2] == (None,) * 8
    assert scraper.request_rates("not-scraped") is None


async def test_an_unreachable_endpoint_is_a_state_with_a_reason() -> None:
    scrape = target(f"http://127.0.0.1:{closed_port()}/metrics")
    scraper = MetricsScraper([scrape], clock=ManualClock())
    try:
        status = await scraper.scrape(scrape)
    finally:
        await scraper.close()
    assert (status.state, status.reason) == (State.CRITICAL, "refuses connections")
    assert scraper.status("catalog") == status
    rates = scraper.request_rates("catalog")
    assert rates is not None and rates.latest is None


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
