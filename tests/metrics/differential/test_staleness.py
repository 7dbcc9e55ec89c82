"""Stale markers: a real Prometheus scrapes a target whose series goes away and comes back;
the SampleStore receives the same scrapes, and the engine over it must answer every
query as Prometheus does at every instant, including the ones where only the marker
(not the 5-minute lookback) hides the series."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsplane.clock import ManualClock
from opsplane.drivers.sandbox.prometheus import TemporaryPrometheus
from opsplane.metrics.promql import PromQLError, instant, range_query
from opsplane.metrics.store import SampleStore
from tests.metrics.differential.compare import Result, differences, from_engine, from_prometheus
from tests.support.http_servers import LocalHttpServer, Reply

pytestmark = pytest.mark.slow

SCRAPE_INTERVAL = 0.5
BOTH = b"kept_total 10\ngone_total 20\n"
ONLY_KEPT = b"kept_total 11\n"
EXPOSITION = "text/plain; version=0.0.4"
QUERIES = [
    "gone_total", "kept_total", "absent(gone_total)", "gone_total or kept_total",
    "count_over_time(gone_total[1m])", "last_over_time(gone_total[1m])", "count(gone_total)",
    "kept_total unless on(job) gone_total",
]


def _poll(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g} s")
        time.sleep(0.05)


def _scrape_times(prometheus: TemporaryPrometheus) -> list[float]:
    result = prometheus.query("kept_total[5m]", time.time())["result"]
    return [float(t) for t, _ in result[0]["values"]] if result else []


def _wait_for_scrapes(prometheus: TemporaryPrometheus, count: int) -> None:
    target = len(_scrape_times(prometheus)) + count
    _poll(lambda: len(_scrape_times(prometheus)) >= target, f"{count} more scrapes")


def test_a_series_that_leaves_a_scrape_is_stale_at_once_in_both(tmp_path: Path) -> None:
    target = LocalHttpServer({"/metrics": Reply(body=BOTH, content_type=EXPOSITION)})
    with target, TemporaryPrometheus(tmp_path, scrape_targets=[f"127.0.0.1:{target.port}"],
                                     scrape_interval=SCRAPE_INTERVAL) as prometheus:
        _wait_for_scrapes(prometheus, 3)
        target.script.routes["/metrics"] = Reply(body=ONLY_KEPT, content_type=EXPOSITION)
        _wait_for_scrapes(prometheus, 4)
        target.script.routes["/metrics"] = Reply(body=BOTH, content_type=EXPOSITION)
        _wait_for_scrapes(prometheus, 3)
        target.script.routes["/metrics"] = Reply(body=ONLY_KEPT, content_type=EXPOSITION)
        _wait_for_scrapes(prometheus, 3)
        end = time.time()
        kept = prometheus.query("kept_total[5m]", end)["result"][0]
        gone = prometheus.query("gone_total[5m]", end)["result"][0]
        store = _mirror(kept, gone, end)
        scrapes = [float(t) for t, _ in kept["values"]]
        gone_times = {float(t) for t, _ in gone["values"]}
        assert gone_times and len(gone_times) < len(scrapes), "the target did not drop the series"
        # Every scrape, half-way between scrapes, and a little after the last one.
        halfway = ((a + b) / 2 for a, b in zip(scrapes, scrapes[1:], strict=False))
        instants = sorted({*scrapes, *halfway, scrapes[-1] + 0.2})
        problems = []
        for expr in QUERIES:
            for at in instants:
                expected = from_prometheus(prometheus.query(expr, at))
                try:
                    got = from_engine(instant(expr, store, at, prometheus=prometheus.major_version()))
                except PromQLError as exc:
                    got = Result("error", error=str(exc))
                where = f"{expr} at first scrape + {at - scrapes[0]:.3f} s"
                problems += [f"{where}: {p}" for p in differences(expected, got)]
            expected = from_prometheus(prometheus.query_range(expr, scrapes[0], scrapes[-1] + 0.2, 0.25))
            try:
                got = from_engine(range_query(expr, store, scrapes[0], scrapes[-1] + 0.2, 0.25,
                                              prometheus=prometheus.major_version()))
            except PromQLError as exc:
                got = Result("error", error=str(exc))
            problems += [f"{expr} as a range query: {p}" for p in differences(expected, got)]
        assert not problems, "\n".join(problems)
        # Without the marker the series would linger for five minutes after it went away.
        last_gone = max(gone_times)
        after = [t for t in scrapes if t > last_gone][0]
        assert prometheus.query("gone_total", after)["result"] == []


def _mirror(kept: dict[str, Any], gone: dict[str, Any], end: float) -> SampleStore:
    """The scrapes Prometheus took, replayed into a SampleStore: each of kept_total's
    timestamps is one scrape, and gone_total was in it when it has a sample there."""
    kept_labels = tuple(sorted(kept["metric"].items()))
    gone_labels = tuple(sorted(gone["metric"].items()))
    gone_values = {float(t): float(v) for t, v in gone["values"]}
    store = SampleStore(clock=ManualClock(datetime.fromtimestamp(end, tz=UTC)))
    for t, v in kept["values"]:
        at = float(t)
        samples = [(kept_labels, float(v))]
        if at in gone_values:
            samples.append((gone_labels, gone_values[at]))
        store.append_scrape("target", at, samples)
    return store
