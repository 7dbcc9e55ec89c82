"""Probe history: results land in time buckets at four resolutions, finished buckets are packed
into two bytes, old buckets age out, and memory is fixed up front."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsplane.clock import ManualClock
from opsplane.health.history import TIERS, ProbeHistory, pack, unpack
from opsplane.health.models import ProbeResult, State


def ok(duration: float) -> ProbeResult:
    return ProbeResult(State.OK, "fine", duration)


def critical(duration: float = 0.0) -> ProbeResult:
    return ProbeResult(State.CRITICAL, "refuses connections", duration)


@pytest.fixture
def clock() -> ManualClock:
    clock = ManualClock()
    clock.advance(1440 - clock.monotonic() % 1440)  # start on a boundary of every tier
    return clock


def test_the_current_bucket_is_exact(clock: ManualClock) -> None:
    history = ProbeHistory(["shop/http"], clock=clock)
    for result in (ok(0.010), ok(0.030), critical(0.050)):
        history.record("shop/http", result)
        clock.advance(4)
    for tier in range(len(TIERS)):
        series = history.series(["shop/http"], tier=tier)
        assert len(series.buckets) == 60 and series.width == TIERS[tier]
        newest = series.buckets[-1]
        assert newest.mean_latency == pytest.approx(0.030, abs=1e-6)
        assert newest.failed == pytest.approx(1 / 3)
        assert not any(b.has_runs for b in series.buckets[:-1])


def test_finished_buckets_keep_their_mean_within_half_a_percent_and_any_failure(
        clock: ManualClock) -> None:
    history = ProbeHistory(["shop/http"], clock=clock)
    durations = [0.0123, 0.250, 3.5, 0.00004]
    for duration in durations:  # one run per 15 s bucket
        history.record("shop/http", ok(duration))
        clock.advance(15)
    history.record("shop/http", critical(0.001))  # the next minute's one run fails
    fine = history.series(["shop/http"], tier=0).buckets
    assert [b.mean_latency for b in fine[-5:-1]] == pytest.approx(durations, rel=0.005)
    assert all(b.failed == 0 for b in fine[-5:-1])
    clock.advance(60)  # the minute bucket is over and packed
    minute = history.series(["shop/http"], tier=1).buckets
    assert minute[-3].mean_latency == pytest.approx(sum(durations) / 4, rel=0.005)
    assert (minute[-2].mean_latency, minute[-2].failed) == (pytest.approx(0.001, rel=0.005), 1.0)
    assert minute[-1].mean_latency is None


def test_one_failure_among_many_runs_is_never_rounded_away() -> None:
    assert unpack(pack(0.01, 255, 1))[1] == pytest.approx(1 / 15)
    assert unpack(pack(0.01, 255, 0))[1] == 0
    assert unpack(pack(0.01, 3, 3))[1] == 1.0
    assert unpack(pack(0.0, 1, 0))[0] == pytest.approx(1e-5)  # below the scale: its floor
    assert unpack(pack(5000.0, 1, 0))[0] == pytest.approx(1000.0)  # above: its ceiling
    assert unpack(0) == (None, 0.0)


def test_buckets_are_ordered_oldest_first_with_wall_time_starts(clock: ManualClock) -> None:
    history = ProbeHistory(["shop/http"], clock=clock)
    for duration in (0.1, 0.2, 0.3):
        history.record("shop/http", ok(duration))
        clock.advance(60)
    series = history.series(["shop/http"], tier=1)
    assert [b.mean_latency for b in series.buckets[-4:-1]] == pytest.approx([0.1, 0.2, 0.3], rel=0.005)
    assert series.buckets[-1].mean_latency is None
    starts = [b.start for b in series.buckets]
    assert all((b - a).total_seconds() == 60 for a, b in zip(starts, starts[1:], strict=False))
    assert starts[-1] <= clock.now() < starts[-1] + timedelta(seconds=60)


def test_each_tier_forgets_what_is_older_than_its_range(clock: ManualClock) -> None:
    history = ProbeHistory(["shop/http"], clock=clock)
    history.record("shop/http", critical(0.2))
    clock.advance(15 * 60 - 1)
    assert history.series(["shop/http"], tier=0).failing_buckets == 1  # inside the 15 minutes
    clock.advance(1)
    assert history.series(["shop/http"], tier=0).failing_buckets == 0  # left them
    assert history.series(["shop/http"], tier=1).failing_buckets == 1  # still in the hour
    clock.advance(23 * 3600)
    assert history.series(["shop/http"], tier=3).failing_buckets == 1  # and in the day
    history.record("shop/http", ok(0.01))  # the slots it reuses are cleared first
    clock.advance(3600)
    for tier in range(len(TIERS)):
        assert history.series(["shop/http"], tier=tier).failing_buckets == 0, tier


def test_a_silent_check_does_not_show_a_lap_old_bucket_as_new(clock: ManualClock) -> None:
    history = ProbeHistory(["a/tcp"], clock=clock)
    history.record("a/tcp", critical())
    clock.advance(15 * 61)  # more than a lap of the finest tier later, nothing written
    assert history.series(["a/tcp"], tier=0).failing_buckets == 0
    assert history.series(["a/tcp"], tier=1).failing_buckets == 1


def test_series_of_several_checks_averages_their_buckets(clock: ManualClock) -> None:
    history = ProbeHistory(["web/http", "web/tcp", "db/postgres"], clock=clock)
    history.record("web/http", ok(0.020))
    history.record("web/http", ok(0.020))
    history.record("web/tcp", ProbeResult(State.WARNING, "slow", 0.040))
    history.record("db/postgres", critical(1.0))
    merged = history.series(["web/http", "web/tcp"], tier=0).buckets[-1]
    assert merged.mean_latency == pytest.approx(0.030, abs=1e-6)  # each check counts once
    assert merged.failed == pytest.approx(0.5)
    assert not any(b.has_runs for b in history.series([]).buckets)
    assert not any(b.has_runs for b in history.series(["not/a-check"]).buckets)


def test_unknown_checks_are_ignored_and_memory_is_fixed_up_front(clock: ManualClock) -> None:
    ids = [f"svc-{i}/http" for i in range(1000)]
    history = ProbeHistory(ids, clock=clock)
    before = history.memory_bytes()
    history.record("other/http", ok(0.1))
    for i in range(1000):
        history.record(ids[i], ok(0.1))
        clock.advance(7.3)
    assert history.memory_bytes() == before
    assert before == 1000 * 512  # 4 tiers of 60 two-byte buckets, the current ones, the newest


def test_counts_saturate_instead_of_wrapping(clock: ManualClock) -> None:
    history = ProbeHistory(["x/tcp"], clock=clock)
    for _ in range(300):
        history.add("x/tcp", State.CRITICAL, 0.001)
    bucket = history.series(["x/tcp"], tier=0).buckets[-1]
    assert bucket.failed == 1.0 and bucket.mean_latency == pytest.approx(0.001, rel=1e-3)


def test_tiers_that_do_not_nest_are_refused() -> None:
    with pytest.raises(ValueError, match="multiple"):
        ProbeHistory(["x/tcp"], tiers=(15, 40))
    with pytest.raises(ValueError, match="multiple"):
        ProbeHistory(["x/tcp"], tiers=(15,), size=0)
