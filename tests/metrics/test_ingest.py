"""A scrape into the sample store: Prometheus's target labels, `up` and the scrape series, and
staleness when a scrape fails."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsplane.clock import ManualClock
from opsplane.metrics.exposition import ExpositionError
from opsplane.metrics.ingest import ingest, ingest_failure, target_labels
from opsplane.metrics.promql import Matcher, is_stale
from opsplane.metrics.scrape import ScrapeTarget
from opsplane.metrics.store import SampleStore

TARGET = ScrapeTarget("orders", "http://127.0.0.1:8202/metrics", interval=15, timeout=5)
T0 = 1_800_000_000.0


def series(store: SampleStore, name: str, at: float) -> dict[tuple[tuple[str, str], ...], list[float]]:
    return {labels: [v for _, v in samples]
            for labels, samples in store.select([Matcher("__name__", "=", name)], at - 3600, at)}


@pytest.fixture
def store() -> SampleStore:
    return SampleStore(clock=ManualClock(datetime.fromtimestamp(T0 + 20, UTC)))


def test_samples_carry_the_target_labels_and_exposed_clashes_are_renamed(store: SampleStore) -> None:
    page = ('orders_total{status="completed",job="shop",empty=""} 12\n'
            'orders_total{status="failed",instance="pod-1"} 1\n')
    done = ingest(store, TARGET, "production", page, at=T0, duration=0.02)

    found = series(store, "orders_total", T0)
    own = {"job": "orders", "service": "orders", "instance": "127.0.0.1:8202", "env": "production"}
    assert dict(next(iter(k for k in found if ("status", "completed") in k))) == {
        **own, "__name__": "orders_total", "status": "completed", "exported_job": "shop"}
    assert dict(next(iter(k for k in found if ("status", "failed") in k))) == {
        **own, "__name__": "orders_total", "status": "failed", "exported_instance": "pod-1"}
    assert done.appended == 5  # two samples, up, scrape_duration_seconds, scrape_samples_scraped
    assert list(series(store, "up", T0).values()) == [[1.0]]
    assert list(series(store, "scrape_samples_scraped", T0).values()) == [[2.0]]
    assert list(series(store, "scrape_duration_seconds", T0).values()) == [[0.02]]


def test_a_failed_scrape_sets_up_to_zero_and_makes_every_series_stale(store: SampleStore) -> None:
    ingest(store, TARGET, "production", "orders_total 12\n", at=T0, duration=0.01)
    ingest_failure(store, TARGET, "production", at=T0 + 15, duration=5.0)

    [[first, marker]] = series(store, "orders_total", T0 + 15).values()
    assert first == 12 and is_stale(marker)
    assert list(series(store, "up", T0 + 15).values()) == [[1.0, 0.0]]


def test_garbage_is_refused_before_anything_is_stored(store: SampleStore) -> None:
    with pytest.raises(ExpositionError, match="line 2"):
        ingest(store, TARGET, "production", "orders_total 1\n<html>oops</html>\n", at=T0, duration=0.1)
    assert store.series_count == 0


def test_instance_is_host_and_port_with_the_scheme_default() -> None:
    https = ScrapeTarget("gw", "https://shop.internal/metrics", interval=15, timeout=5)
    v6 = ScrapeTarget("gw", "http://[::1]:9000/metrics", interval=15, timeout=5)
    assert target_labels(https, "staging")["instance"] == "shop.internal:443"
    assert target_labels(v6, "staging")["instance"] == "[::1]:9000"


def test_the_series_cache_gives_the_same_samples_and_follows_new_values(store: SampleStore) -> None:
    from opsplane.metrics.ingest import SeriesCache

    cache = SeriesCache(limit=100)
    first = 'orders_total{status="completed"} 12\nup_time 5\n'
    second = 'orders_total{status="completed"} 13\nup_time 6 1700000000000\n'
    ingest(store, TARGET, "production", first, at=T0, duration=0.01, cache=cache)
    ingest(store, TARGET, "production", second, at=T0 + 15, duration=0.01, cache=cache)
    uncached = SampleStore(clock=ManualClock(datetime.fromtimestamp(T0 + 20, UTC)))
    ingest(uncached, TARGET, "production", first, at=T0, duration=0.01)
    ingest(uncached, TARGET, "production", second, at=T0 + 15, duration=0.01)

    for name in ("orders_total", "up_time"):
        assert series(store, name, T0 + 15) == series(uncached, name, T0 + 15)
    assert list(series(store, "orders_total", T0 + 15).values()) == [[12.0, 13.0]]


def test_the_series_cache_starts_over_past_its_limit() -> None:
    from opsplane.metrics.ingest import SeriesCache

    cache = SeriesCache(limit=2)
    raw, _ = cache.of("orders")
    raw.update({"a": (), "b": (), "c": ()})
    assert cache.of("orders")[0] == {}
