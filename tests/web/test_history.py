"""Probe history: results land in fixed time buckets, old buckets age out, memory stays flat."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsplane.clock import ManualClock
from opsplane.health.history import ProbeHistory
from opsplane.health.models import ProbeResult, State


def ok(duration: float) -> ProbeResult:
    return ProbeResult(State.OK, "fine", duration)


def critical(duration: float = 0.0) -> ProbeResult:
    return ProbeResult(State.CRITICAL, "refuses connections", duration)


@pytest.fixture
def clock() -> ManualClock:
    clock = ManualClock()
    clock.advance(60 - clock.monotonic() % 60)  # start on a bucket boundary
    return clock


def test_results_in_one_bucket_are_counted_with_mean_and_max_latency(clock: ManualClock) -> None:
    history = ProbeHistory(["shop/http"], window=600, bucket=60, clock=clock)
    history.record("shop/http", ok(0.010))
    clock.advance(20)
    history.record("shop/http", ok(0.030))
    clock.advance(20)
    history.record("shop/http", critical(0.050))
    series = history.series(["shop/http"])
    assert len(series.buckets) == 10
    newest = series.buckets[-1]
    assert (newest.count, newest.failures, newest.worst) == (3, 1, State.CRITICAL)
    assert newest.mean_latency == pytest.approx(0.030, abs=1e-6)
    assert newest.max_latency == pytest.approx(0.050, abs=1e-6)
    assert all(b.count == 0 and b.worst is None and b.mean_latency is None for b in series.buckets[:-1])


def test_buckets_are_ordered_oldest_first_with_wall_time_starts(clock: ManualClock) -> None:
    history = ProbeHistory(["shop/http"], window=300, bucket=60, clock=clock)
    for duration in (0.1, 0.2, 0.3):
        history.record("shop/http", ok(duration))
        clock.advance(60)
    series = history.series(["shop/http"])
    assert [b.mean_latency for b in series.buckets] == pytest.approx([None, 0.1, 0.2, 0.3, None])
    starts = [b.start for b in series.buckets]
    assert all((b - a).total_seconds() == 60 for a, b in zip(starts, starts[1:], strict=False))
    assert starts[-1] <= clock.now() < starts[-1] + timedelta(seconds=60)


def test_results_older_than_the_window_are_forgotten(clock: ManualClock) -> None:
    history = ProbeHistory(["shop/http"], window=300, bucket=60, clock=clock)
    history.record("shop/http", critical())
    clock.advance(299)
    assert history.series(["shop/http"]).failures == 1  # still inside the last five minutes
    clock.advance(1)
    assert history.series(["shop/http"]).failures == 0  # the bucket left the window
    history.record("shop/http", ok(0.01))  # a lap later the same slot is reused, cleared first
    series = history.series(["shop/http"])
    assert (series.runs, series.failures) == (1, 0)


def test_a_silent_check_does_not_show_a_lap_old_bucket_as_new(clock: ManualClock) -> None:
    history = ProbeHistory(["a/tcp"], window=300, bucket=60, clock=clock)
    history.record("a/tcp", critical())
    clock.advance(60 * 7)  # more than a lap later, nothing written in between
    assert history.series(["a/tcp"]).runs == 0


def test_series_of_several_checks_merges_them(clock: ManualClock) -> None:
    history = ProbeHistory(["web/http", "web/tcp", "db/postgres"], window=120, bucket=60, clock=clock)
    history.record("web/http", ok(0.020))
    history.record("web/tcp", ProbeResult(State.WARNING, "slow", 0.040))
    history.record("db/postgres", critical(1.0))
    merged = history.series(["web/http", "web/tcp"]).buckets[-1]
    assert (merged.count, merged.failures, merged.worst) == (2, 1, State.WARNING)
    assert merged.mean_latency == pytest.approx(0.030, abs=1e-6)
    assert history.series([]).runs == 0
    assert history.series(["not/a-check"]).runs == 0


def test_unknown_checks_are_ignored_and_memory_is_fixed_up_front(clock: ManualClock) -> None:
    ids = [f"svc-{i}/http" for i in range(1000)]
    history = ProbeHistory(ids, clock=clock)  # the defaults: an hour of 60 s buckets
    before = history.memory_bytes()
    history.record("other/http", ok(0.1))
    for i in range(1000):
        history.record(ids[i], ok(0.1))
        clock.advance(7.3)
    assert history.memory_bytes() == before
    assert before == 1000 * 60 * 11 + 1000 * 8  # 11 bytes per bucket, 8 per check


def test_counts_saturate_instead_of_wrapping(clock: ManualClock) -> None:
    history = ProbeHistory(["x/tcp"], window=60, bucket=60, clock=clock)
    for _ in range(300):
        history.add("x/tcp", State.CRITICAL, 0.001)
    bucket = history.series(["x/tcp"]).buckets[-1]
    assert (bucket.count, bucket.failures, bucket.worst) == (255, 255, State.CRITICAL)
    assert bucket.mean_latency == pytest.approx(0.001, rel=1e-3)


def test_a_window_shorter_than_a_bucket_is_refused() -> None:
    with pytest.raises(ValueError, match="bucket"):
        ProbeHistory(["x/tcp"], window=30, bucket=60)
