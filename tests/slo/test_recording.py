"""Recording: minute counts from scraped counters and histograms, the in-memory ledger agreeing
with the plain sums, and the store's minutes and hours read back into the same answers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsplane.metrics.promql import MemorySource
from opsplane.slo import service
from opsplane.slo.budget import counts_of
from opsplane.slo.ledger import Ledger
from opsplane.slo.models import Slo
from opsplane.slo.record import check_counts, minute_counts
from opsplane.store import Store

T0 = 1_800_000_000 // 3600 * 3600  # on an hour


def slo(**fields: Any) -> Slo:
    given: dict[str, Any] = {"service": "gateway", "objective": "99%",
                             "sli": {"events": {"bad": 'http_requests_total{status=~"5.."}',
                                                "total": "http_requests_total"}}}
    return Slo.model_validate({**given, **fields})


def counter(labels: dict[str, str], per_scrape: list[float], *, start: float, every: float = 15.0
            ) -> tuple[dict[str, str], list[tuple[float, float]]]:
    value, samples = 0.0, []
    for n, step in enumerate(per_scrape):
        value = -step if step < 0 else value + step  # a negative step: restarted at -step
        samples.append((start + n * every, value))
    return labels, samples


def test_events_are_counted_in_the_minute_they_happen_and_a_restart_counts_from_zero() -> None:
    ok = {"__name__": "http_requests_total", "status": "200"}
    failed = {"__name__": "http_requests_total", "status": "500"}
    # scrapes every 15 s from T0 - 10: 10 requests each, 1 failure each in the second minute;
    # the process restarts in the third minute and its counter begins again at 4
    source = MemorySource([
        counter(ok, [10.0] * 9 + [-4.0, 10.0, 10.0, 10.0], start=T0 - 10),
        counter(failed, [0.0] * 5 + [1.0] * 4 + [-1.0, 0.0, 0.0, 0.0], start=T0 - 10),
    ])
    got = minute_counts(slo(), source, T0 // 60, 3)
    assert got.problem is None
    assert got.minutes[0] == (40.0, 40.0)
    assert got.minutes[1] == (40.0, 44.0)
    # after the restart each counter's count since it began: 4 + 10 + 10 + 10 good, 1 failure
    assert got.minutes[2] == (34.0, 35.0)


def histogram(start: float, bounds: tuple[str, ...], fast_share: float, per_scrape: int = 100,
              scrapes: int = 9) -> MemorySource:
    source = MemorySource()
    labels = {"service": "gateway"}
    fast = per_scrape * fast_share
    for le in (*bounds, "+Inf"):
        per = fast if le != "+Inf" and float(le) <= 0.15 else per_scrape
        source.add({"__name__": "http_request_duration_seconds_bucket", "le": le, **labels},
                   [(start + 15 * n, per * n) for n in range(scrapes)])
    source.add({"__name__": "http_request_duration_seconds_count", **labels},
               [(start + 15 * n, per_scrape * n) for n in range(scrapes)])
    return source


def latency_slo(threshold: str) -> Slo:
    return slo(sli={"latency": {"histogram": 'http_request_duration_seconds{service="gateway"}',
                                "threshold": threshold}})


def test_latency_counts_the_bucket_at_the_threshold_over_the_count() -> None:
    source = histogram(T0 - 15, ("0.05", "0.1", "0.15", "0.3", "1"), fast_share=0.9)
    got = minute_counts(latency_slo("150ms"), source, T0 // 60, 1)
    assert got.problem is None
    assert got.minutes[0] == pytest.approx((360.0, 400.0))


def test_a_threshold_that_is_no_bucket_boundary_says_which_boundaries_there_are() -> None:
    source = histogram(T0 - 15, ("0.05", "0.1", "0.25", "1"), fast_share=0.9)
    got = minute_counts(latency_slo("150ms"), source, T0 // 60, 1)
    assert got.minutes == ()
    assert got.problem is not None
    assert "no bucket at 0.15 s" in got.problem and "0.05, 0.1, 0.25, 1" in got.problem


def test_check_results_are_counted_between_two_readings() -> None:
    before = {"gateway": (10, 12)}
    assert check_counts({"gateway": (15, 18)}, "gateway", before) == (5.0, 6.0)
    assert check_counts({}, "payments", before) == (0.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31), st.sampled_from(["1m", "5m", "1h"]), st.integers(1, 4000),
       st.integers(0, 5000))
def test_the_ledger_sums_as_the_plain_minutes_do(seed: int, slice_: str, span: int, back: int) -> None:
    spec = slo(budgeting="timeslices", timeslice=slice_, timeslice_target="90%")
    rng = random.Random(seed)
    ledger = Ledger(spec)
    minutes = []
    first = T0 // 60
    width = int(spec.timeslice // 60)
    for m in range(first, first + 5000):
        if rng.random() < 0.1 and (m + 1) % width:
            continue  # serve was down (not when a slice ends: see the next test)
        total = float(rng.choice([0, 5, 10, 100]))
        good = total if rng.random() < 0.8 else float(rng.randint(0, int(total)))
        ledger.add(m, good, total)
        minutes.append((m * 60.0, good, total))
    end = (first + 5000 - back) * 60.0
    start = end - span * 60.0
    if start < (first + 5000 - ledger.size) * 60.0:  # older than the minutes kept: sums by hour
        return
    got, want = ledger.counts(start, end), counts_of(spec, minutes, start, end)
    assert (got.total, got.slices, got.bad_slices) == (want.total, want.slices, want.bad_slices)
    assert got.good == pytest.approx(want.good)


def test_a_slice_is_judged_when_its_last_minute_is_recorded() -> None:
    spec = slo(budgeting="timeslices", timeslice="5m", timeslice_target="90%")
    ledger = Ledger(spec)
    first = T0 // 60
    for m in range(first, first + 4):
        assert ledger.add(m, 0.0, 10.0) == (0, 0)
    # serve was down in the slice's last minute: the slice is left unjudged, as if good
    assert ledger.add(first + 5, 10.0, 10.0) == (0, 0)
    assert ledger.counts(first * 60.0, (first + 10) * 60.0).bad_slices == 0
    assert [ledger.add(first + n, 10.0, 10.0) for n in range(6, 10)][-1] == (1, 0)


def test_a_30_day_window_is_summed_from_hours_once_the_minutes_are_gone() -> None:
    spec = slo(objective="99.9%")
    ledger = Ledger(spec)
    first = T0 // 60
    for m in range(first, first + 30 * 1440):
        ledger.add(m, 999.0 if m % 1000 == 0 else 1000.0, 1000.0)
    counts = ledger.counts(first * 60.0, (first + 30 * 1440) * 60.0)
    assert counts.total == 30 * 1440 * 1000
    assert counts.bad == sum(1 for m in range(first, first + 30 * 1440) if m % 1000 == 0)
    assert ledger.memory_bytes() < 200_000


def test_the_store_keeps_minutes_and_hours_and_reads_them_back_as_the_ledger_had_them(store: Store) -> None:
    spec = slo(window="1d")
    kept = Ledger(spec)
    now = datetime.fromtimestamp(T0 + 2 * 86400, UTC)
    first = (T0 + 86400) // 60
    with store.session() as session:
        for m in range(first, first + 1440):
            bad = 3.0 if m % 7 == 0 else 0.0
            ended = kept.add(m, 100.0 - bad, 100.0)
            assert ended is not None
            assert service.record(session, slo="api", minute=m, good=100.0 - bad, total=100.0,
                                  slices=ended[0], bad_slices=ended[1])
        assert not service.record(session, slo="api", minute=first, good=1.0, total=1.0)  # once only
    with store.session() as session:
        loaded = service.load(session, name="api", slo=spec, now=now)
        hours = service.hours(session, name="api", start=now - timedelta(days=1), end=now)
    assert len(hours) == 24 and all(row.minutes == 60 for row in hours)
    for start in (now.timestamp() - 86400, now.timestamp() - 3600 - 120, now.timestamp() - 300):
        assert loaded.counts(start, now.timestamp()) == kept.counts(start, now.timestamp())
    with store.session() as session:
        gone = service.prune(session, now=now + timedelta(days=2, hours=1))
    assert gone == 60  # the first hour's minutes, three days old; the hours stay
