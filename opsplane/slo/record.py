"""Each SLO's good and all events per minute, from what opsplane scrapes (or its checks).

An events SLI's counters and a latency SLI's histogram (its bucket at the threshold and its
`_count`) are read at every minute's edge through the PromQL engine and differenced series by
series, then summed: a counter that went down was restarted and counted its new value since.
Differencing the edges rather than asking for `increase(...[1m])` puts every event in exactly
one minute, with no extrapolation across a minute's edge. A series first seen in a minute gives
nothing for it (nothing says where its count began); a minute with no sample at its edges
(`serve` was down) gives nothing at all.

A checks SLI counts the results of the component's checks that came in the minute, OK being
good, from the health worker's running tallies (`CheckReads.tallies`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsplane.metrics.promql import (
    Labels,
    Matcher,
    Matrix,
    PromQLError,
    SeriesSource,
    labels_of,
    parse,
    range_query,
)
from opsplane.metrics.promql.syntax import VectorSelector
from opsplane.slo.models import Slo

if TYPE_CHECKING:
    from opsplane.metrics.remote import PrometheusClient

METRIC_NAME = "__name__"


@dataclass(frozen=True)
class MinuteCounts:
    """One SLO's minutes [first, first + len), each (good, total); `problem` says why the SLI
    cannot be read (a latency threshold that is no bucket boundary), with no minutes then."""

    first: int
    minutes: tuple[tuple[float, float], ...] = ()
    problem: str | None = None


def selector(text: str) -> VectorSelector:
    """The plain selector `text` names; PromQLError when it is anything else."""
    tree = parse(text)
    if not isinstance(tree, VectorSelector) or tree.offset:
        raise PromQLError(f"{text!r} must be a plain selector such as name{{label=\"value\"}}, "
                          "without functions, operators or offset", "selector")
    if not any(m.name == METRIC_NAME and m.op == "=" for m in tree.matchers):
        raise PromQLError(f"{text!r} must name its metric", "selector")
    return tree


def renamed(tree: VectorSelector, suffix: str, *extra: Matcher) -> VectorSelector:
    """The selector of the same labels on the metric `name + suffix` (a histogram's series)."""
    matchers = tuple(Matcher(m.name, m.op, m.value + suffix) if m.name == METRIC_NAME and m.op == "=" else m
                     for m in tree.matchers)
    return VectorSelector(matchers + extra)


def minute_counts(slo: Slo, source: SeriesSource, first: int, count: int) -> MinuteCounts:
    """The events of minutes [first, first + count) (minute numbers: Unix seconds // 60) of an
    events or latency SLI, read from `source`."""
    start, end = first * 60.0, (first + count) * 60.0
    sli = slo.sli
    if sli.events is not None:
        total = _per_minute(source, selector(sli.events.total), start, end)
        if sli.events.good is not None:
            good = _per_minute(source, selector(sli.events.good), start, end)
        else:
            bad = _per_minute(source, selector(sli.events.bad or ""), start, end)
            good = [max(0.0, t - b) for t, b in zip(total, bad, strict=True)]
        return MinuteCounts(first, tuple(zip(good, total, strict=True)))
    assert sli.latency is not None
    histogram = selector(sli.latency.histogram)
    le, problem = bucket_at(source, histogram, sli.latency.threshold, start, end)
    if problem is not None:
        return MinuteCounts(first, (), problem)
    if le is None:  # no bucket series yet: nothing answered
        return MinuteCounts(first, tuple((0.0, 0.0) for _ in range(count)))
    good = _per_minute(source, renamed(histogram, "_bucket", Matcher("le", "=", le)), start, end)
    total = _per_minute(source, renamed(histogram, "_count"), start, end)
    return MinuteCounts(first, tuple((min(g, t), t) for g, t in zip(good, total, strict=True)))


def bucket_at(source: SeriesSource, histogram: VectorSelector, threshold: float, start: float, end: float
              ) -> tuple[str | None, str | None]:
    """The `le` label of the histogram's bucket at `threshold` seconds, and None; or None and
    why there is none (the boundaries found); (None, None) while the histogram has no series."""
    found: dict[str, float] = {}
    for labels, _ in source.select(renamed(histogram, "_bucket").matchers, start - 300.0, end):
        le = dict(labels).get("le")
        if le is not None:
            try:
                found[le] = float(le)
            except ValueError:
                continue
    if not found:
        return None, None
    for le, bound in found.items():
        if math.isclose(bound, threshold, rel_tol=1e-9, abs_tol=1e-12):
            return le, None
    bounds = ", ".join(f"{b:g}" for b in sorted(set(found.values())) if math.isfinite(b))
    name = next(m.value for m in histogram.matchers if m.name == METRIC_NAME)
    return None, (f"{name} has no bucket at {threshold:g} s, so its latency SLI cannot be read; its "
                  f"boundaries are {bounds}: choose one as the threshold or add the bucket")


def check_counts(tallies: Mapping[str, tuple[int, int]], component: str,
                 before: Mapping[str, tuple[int, int]]) -> tuple[float, float]:
    """(OK results, all results) of `component`'s checks between two readings of the health
    worker's running tallies."""
    ok, total = tallies.get(component, (0, 0))
    ok0, total0 = before.get(component, (0, 0))
    return float(max(0, ok - ok0)), float(max(0, total - total0))


def _per_minute(source: SeriesSource, tree: VectorSelector, start: float, end: float) -> list[float]:
    """What the counters `tree` selects counted in each minute of [start, end), summed."""
    count = round((end - start) / 60)
    sums = [0.0] * count
    value = range_query(tree, source, start, end, 60.0)
    assert isinstance(value, Matrix)
    for _, samples in value.series:
        for (t0, v0), (t1, v1) in zip(samples, samples[1:], strict=False):
            if t1 - t0 > 90.0:  # the series was missing at an edge between: no difference to take
                continue
            index = round((t0 - start) / 60)
            if 0 <= index < count:
                sums[index] += v1 if v1 < v0 else v1 - v0
    return sums


class PrometheusSource:
    """A `SeriesSource` over a Prometheus (`metrics.source: prometheus`): a selector's raw
    samples in a window, asked for as `selector[range]` at the window's end."""

    def __init__(self, client: PrometheusClient) -> None:
        self.client = client

    def select(self, matchers: Sequence[Matcher], start: float, end: float
               ) -> list[tuple[Labels, list[tuple[float, float]]]]:
        text = "{" + ",".join(f"{m.name}{m.op}{json.dumps(m.value)}" for m in matchers) + "}"
        width = max(1, math.ceil((end - start) * 1000))
        from opsplane.metrics.remote import number

        data = self.client.query(f"{text}[{width}ms]", end)
        return [(labels_of(item["metric"]), [(float(t), number(v)) for t, v in item.get("values", [])])
                for item in data.get("result", [])]
