"""Per-interval figures of each release of a service, read with PromQL from the samples `serve`
scrapes: the same series the alert rules read, split by the `version` label a service puts on its
request metrics (`http_requests_total`, `http_request_duration_seconds`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from opsplane.deploy.analysis import Interval
from opsplane.metrics.promql import Matrix, SeriesSource, range_query


def _queries(service: str, window: str) -> dict[str, str]:
    selector = f'service="{service}"'
    duration = "http_request_duration_seconds"
    return {
        "requests": f"sum by (version) (increase(http_requests_total{{{selector}}}[{window}]))",
        "errors": f'sum by (version) (increase(http_requests_total{{{selector},status=~"5.."}}[{window}]))',
        "latency_sum": f"sum by (version) (increase({duration}_sum{{{selector}}}[{window}]))",
        "buckets": f"sum by (version, le) (increase({duration}_bucket{{{selector}}}[{window}]))",
    }


def intervals(source: SeriesSource, service: str, versions: Iterable[str], *, start: float, end: float,
              interval: float) -> dict[str, list[Interval]]:
    """Each of `versions`' intervals of `interval` seconds ending after `start` and at or before
    `end`, oldest first. An interval in which a version answered nothing is left out for it."""
    wanted = set(versions)
    first = start + interval
    if end < first:
        return {version: [] for version in wanted}
    window = f"{int(interval * 1000)}ms"
    steps: dict[str, dict[float, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    buckets: dict[str, dict[float, dict[float, float]]] = defaultdict(lambda: defaultdict(dict))
    for name, expr in _queries(service, window).items():
        value = range_query(expr, source, first, end, interval)
        assert isinstance(value, Matrix)
        for labels, samples in value.series:
            found = dict(labels)
            version = found.get("version")
            if version not in wanted:
                continue
            for at, number in samples:
                if name == "buckets":
                    le = float(found.get("le", "+Inf"))
                    buckets[version][at][le] = number
                else:
                    steps[version][at][name] = number
    result: dict[str, list[Interval]] = {}
    for version in wanted:
        found_steps = steps.get(version, {})
        result[version] = [
            Interval(requests=figures.get("requests", 0.0), errors=figures.get("errors", 0.0),
                     latency_sum=figures.get("latency_sum", 0.0),
                     buckets=tuple(sorted(buckets.get(version, {}).get(at, {}).items())))
            for at, figures in sorted(found_steps.items()) if figures.get("requests", 0.0) > 0
        ]
    return result
