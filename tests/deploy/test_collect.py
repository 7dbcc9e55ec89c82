"""Per-interval figures of each release, read from a sample store as `serve` fills it."""

from __future__ import annotations

from datetime import UTC, datetime

from opsplane.deploy.collect import intervals
from opsplane.metrics.promql.model import labels_of
from opsplane.metrics.store import SampleStore

T0 = datetime(2026, 12, 8, 11, 0, tzinfo=UTC).timestamp()


def scrape(store: SampleStore, target: str, at: float, version: str, *, ok: float, failed: float,
           slow: float, health: float = 0.0) -> None:
    """One scrape of an instance of catalog: `ok` and `failed` requests to /products so far (a
    `slow` part of them over 0.5 s), and `health` requests to /health."""
    base = {"service": "catalog", "version": version, "instance": target}

    def series(name: str, value: float, **extra: str) -> tuple:
        return labels_of({"__name__": name, **base, **extra}), value

    total = ok + failed
    store.append_scrape(target, at, [
        series("http_requests_total", ok, route="/products", status="200"),
        series("http_requests_total", failed, route="/products", status="500"),
        series("http_requests_total", health, route="/health", status="200"),
        series("http_request_duration_seconds_sum", total * 0.05 + slow, route="/products"),
        series("http_request_duration_seconds_bucket", total - slow, route="/products", le="0.5"),
        series("http_request_duration_seconds_bucket", total, route="/products", le="+Inf"),
        series("http_request_duration_seconds_count", total, route="/products"),
    ])


def test_each_interval_holds_what_each_release_answered_in_it() -> None:
    store = SampleStore(window=3600)
    for step in range(7):  # scrapes every 5 s; intervals of 10 s
        at = T0 + step * 5
        scrape(store, "a", at, "v1", ok=100 * step, failed=0, slow=0, health=50 * step)
        scrape(store, "b", at, "v2", ok=90 * step, failed=10 * step, slow=20 * step)
    found = intervals(store, "catalog", ["v1", "v2"], start=T0, end=T0 + 30, interval=10)
    assert [i.requests for i in found["v1"]] == [200, 200, 200]  # /health is not counted
    assert [i.errors for i in found["v2"]] == [20, 20, 20]
    assert found["v2"][0].buckets == ((0.5, 160.0), (float("inf"), 200.0))
    assert found["v2"][0].latency_sum == 200 * 0.05 + 40


def test_a_restarted_counter_counts_from_zero_and_a_new_series_waits_for_its_second_reading() -> None:
    store = SampleStore(window=3600)
    scrape(store, "a", T0, "v1", ok=500, failed=0, slow=0)
    scrape(store, "a", T0 + 10, "v1", ok=600, failed=0, slow=0)
    scrape(store, "a", T0 + 20, "v1", ok=30, failed=0, slow=0)  # the instance restarted
    scrape(store, "b", T0 + 10, "v2", ok=40, failed=0, slow=0)  # started during the first interval
    scrape(store, "b", T0 + 20, "v2", ok=70, failed=0, slow=0)
    found = intervals(store, "catalog", ["v1", "v2"], start=T0, end=T0 + 20, interval=10)
    assert [i.requests for i in found["v1"]] == [100, 30]
    assert [i.requests for i in found["v2"]] == [30]


def test_too_short_a_span_has_no_interval() -> None:
    store = SampleStore(window=3600)
    scrape(store, "a", T0, "v1", ok=1, failed=0, slow=0)
    assert intervals(store, "catalog", ["v1"], start=T0, end=T0 + 5, interval=10) == {"v1": []}
