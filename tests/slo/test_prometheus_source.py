"""With `metrics.source: prometheus`, an SLO's minutes are read from a real Prometheus (Debian's,
started on loopback with imported samples) and come out as they do from opsplane's own sample
store: the same counters, restarts and histogram buckets, minute by minute."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsplane.drivers.sandbox.prometheus import TemporaryPrometheus, openmetrics_text
from opsplane.metrics.promql import MemorySource
from opsplane.metrics.remote import PrometheusClient
from opsplane.slo.models import Slo
from opsplane.slo.record import PrometheusSource, minute_counts

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None and not Path("/usr/bin/promtool").exists(),
                                reason="Debian's prometheus is not installed (scripts/bootstrap.sh --test)")

DAY = 1768435200.0  # 2026-01-15T00:00:00Z: blocks must lie in the past
Series = tuple[tuple[tuple[str, str], ...], list[tuple[float, float]]]


def labels(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


def series() -> list[Series]:
    """20 minutes of 15-second scrapes from DAY + 7 s: requests, failures (and a restart of the
    counters at minute 12), and a latency histogram with a bucket at 0.15 s."""
    found: list[Series] = []
    times = [DAY + 7 + 15 * n for n in range(80)]
    ok = [float(10 * n if n < 48 else 10 * (n - 48)) for n in range(80)]
    bad = [float(n // 8 if n < 48 else (n - 48) // 8) for n in range(80)]
    found.append((labels(__name__="http_requests_total", service="gateway", status="200"),
                  list(zip(times, ok, strict=True))))
    found.append((labels(__name__="http_requests_total", service="gateway", status="500"),
                  list(zip(times, bad, strict=True))))
    for le, share in (("0.1", 0.5), ("0.15", 0.9), ("+Inf", 1.0)):
        found.append((labels(__name__="http_request_duration_seconds_bucket", service="gateway", le=le),
                      [(t, round(10 * n * share)) for n, t in enumerate(times)]))
    found.append((labels(__name__="http_request_duration_seconds_count", service="gateway"),
                  [(t, 10.0 * n) for n, t in enumerate(times)]))
    return found


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryPrometheus]:
    server = TemporaryPrometheus(tmp_path_factory.mktemp("prometheus"))
    server.import_openmetrics(openmetrics_text(series()))
    with server:
        yield server


def slo(sli: dict[str, Any]) -> Slo:
    return Slo.model_validate({"service": "gateway", "objective": "99%", "sli": sli})


@pytest.mark.parametrize("sli", [
    {"events": {"bad": 'http_requests_total{service="gateway",status="500"}',
                "total": 'http_requests_total{service="gateway"}'}},
    {"latency": {"histogram": 'http_request_duration_seconds{service="gateway"}', "threshold": "150ms"}},
])
def test_minutes_read_from_prometheus_are_those_read_from_the_sample_store(
        prometheus: TemporaryPrometheus, sli: dict[str, Any]) -> None:
    first, count = int(DAY // 60) + 1, 18
    client = PrometheusClient(prometheus.url)
    try:
        remote = minute_counts(slo(sli), PrometheusSource(client), first, count)
    finally:
        client.close()
    local = minute_counts(slo(sli), MemorySource(series()), first, count)
    assert remote.problem is None and local.problem is None
    assert remote.minutes == local.minutes
    assert sum(total for _, total in local.minutes) > 0
