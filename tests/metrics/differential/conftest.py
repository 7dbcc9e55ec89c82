"""One Prometheus for the whole differential suite, loaded with every data set, and the same
series as an engine source."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opsplane.drivers.sandbox.prometheus import TemporaryPrometheus, openmetrics_text
from opsplane.metrics.promql import MemorySource
from tests.metrics.differential.datasets import all_series


@pytest.fixture(scope="session")
def reference_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryPrometheus]:
    """A real Prometheus answering queries over the data sets' samples."""
    prometheus = TemporaryPrometheus(tmp_path_factory.mktemp("prometheus"))
    prometheus.import_openmetrics(openmetrics_text(all_series()))
    with prometheus:
        yield prometheus


@pytest.fixture(scope="session")
def engine_source() -> MemorySource:
    """The same samples for opsplane's engine."""
    return MemorySource(all_series())
