"""Per-interval figures of each release of a service, from the samples `serve` scrapes: the same
series the alert rules read, split by the `version` label a service puts on its request metrics
(`http_requests_total`, `http_request_duration_seconds`).

Each counter is read at the end of every interval and differenced series by series (a counter
that went down was restarted: its new value is what it counted since), then summed per release.
Differencing raw samples rather than asking for `increase(...[interval])` keeps every request in
exactly one interval however the interval and the scrape interval line up. A series seen for the
first time gives no difference for that interval: nothing says where its count began.

Requests to `/health` and `/metrics` are left out: they are the platform looking, not shoppers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from opsplane.deploy.analysis import Interval
from opsplane.metrics.promql import Matrix, SeriesSource, range_query

OWN_ROUTES = "/health|/metrics"


def _selectors(service: str) -> dict[str, str]:
    matchers = f'service="{service}",route!~"{OWN_ROUTES}"'
    return {
        "requests": f"http_requests_total{{{matchers}}}",
        "errors": f'http_requests_total{{{matchers},status=~"5.."}}',
        "latency_sum": f"http_request_duration_seconds_sum{{{matchers}}}",
        "buckets": f"http_request_duration_seconds_bucket{{{matchers}}}",
    }


def intervals(source: SeriesSource, service: str, versions: Iterable[str], *, start: float, end: float,
              interval: float) -> dict[str, list[Interval]]:
    """Each of `versions`' intervals of `interval` seconds from `start` to `end`, oldest first.
    An interval in which a version answered nothing is left out for it."""
    wanted = set(versions)
    if end < start + interval:
        return {version: [] for version in wanted}
    figures: dict[str, dict[float, dict[str, float]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(float)))
    buckets: dict[str, dict[float, dict[float, float]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(float)))
    for name, selector in _selectors(service).items():
        value = range_query(selector, source, start, end, interval)
        assert isinstance(value, Matrix)
        for labels, samples in value.series:
            found = dict(labels)
            version = found.get("version")
            if version not in wanted:
                continue
            for at, delta in _differences(samples, interval):
                if name == "buckets":
                    buckets[version][at][float(found.get("le", "+Inf"))] += delta
                else:
                    figures[version][at][name] += delta
    result: dict[str, list[Interval]] = {}
    for version in wanted:
        steps = figures.get(version, {})
        result[version] = [
            Interval(requests=got["requests"], errors=got.get("errors", 0.0),
                     latency_sum=got.get("latency_sum", 0.0),
                     buckets=tuple(sorted(buckets.get(version, {}).get(at, {}).items())))
            for at, got in sorted(steps.items()) if got.get("requests", 0.0) > 0
        ]
    return result


def _differences(samples: list[tuple[float, float]], interval: float) -> Iterable[tuple[float, float]]:
    """(end of interval, what the counter counted in it) for consecutive evaluation steps; a
    counter that went down restarted, and counted its new value since."""
    for (t0, v0), (t1, v1) in zip(samples, samples[1:], strict=False):
        if t1 - t0 > interval * 1.5:  # the series was missing in between: no difference to take
            continue
        yield t1, v1 if v1 < v0 else v1 - v0
