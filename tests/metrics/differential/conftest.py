"""One Prometheus for the whole differential suite, loaded with every data set, and the same
series for the engine: in a MemorySource, and in the scraper's SampleStore."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from opsplane.clock import ManualClock
from opsplane.drivers.sandbox.prometheus import TemporaryPrometheus, openmetrics_text
from opsplane.metrics.promql import MemorySource, SeriesSource
from opsplane.metrics.store import SampleStore
from tests.metrics.differential.datasets import DAY, SPAN, Series, all_series


@pytest.fixture(scope="session")
def reference_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryPrometheus]:
    """A real Prometheus answering queries over the data sets' samples."""
    prometheus = TemporaryPrometheus(tmp_path_factory.mktemp("prometheus"))
    prometheus.import_openmetrics(openmetrics_text(all_series()))
    with prometheus:
        yield prometheus


def _sample_store(series: list[Series]) -> SampleStore:
    """The series in a SampleStore whose window holds all of them. Each series is its own
    target, scraped exactly when it has a sample, so no stale marker is written: like the
    blocks Prometheus reads, a series that stops simply has no more samples."""
    clock = ManualClock(datetime.fromtimestamp(DAY + SPAN + 900, tz=UTC))
    store = SampleStore(window=2 * SPAN, clock=clock)
    for number, (labels, samples) in enumerate(series):
        for t, value in samples:
            store.append_scrape(f"series-{number}", t, [(labels, value)])
    return store


@pytest.fixture(scope="session", params=["memory", "store"])
def engine_source(request: pytest.FixtureRequest) -> SeriesSource:
    """The same samples for opsplane's engine, in each kind of source it reads."""
    series = all_series()
    if request.param == "memory":
        return MemorySource(series)
    return _sample_store(series)
