"""Rules evaluated by opsplane's PromQL engine over any series source (the scraper's window,
or a fixed data set), as Prometheus's rule manager evaluates them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from opsplane.alerts.state import Evaluate, Sample
from opsplane.metrics.promql import (
    InstantVector,
    Labels,
    Matcher,
    PromQLError,
    Scalar,
    SeriesSource,
    instant,
)
from opsplane.metrics.promql import Sample as SeriesSample


class CycleCache:
    """A `SeriesSource` that answers each selection once per evaluation time.

    The rules of one cycle are evaluated at the same instant and many read the same series
    (the rule pack's error ratios, latencies and saturation rules share their selectors), so
    the second rule asking for `http_requests_total[5m]` gets the first one's answer. A new
    evaluation time starts the cache afresh, so samples are never older than the cycle.
    """

    def __init__(self, source: SeriesSource) -> None:
        self.source = source
        self.at: float | None = None
        self._answers: dict[tuple[object, ...], list[tuple[Labels, Sequence[SeriesSample]]]] = {}

    def begin(self, at: float) -> None:
        if at != self.at:
            self.at = at
            self._answers.clear()

    def select(self, matchers: Sequence[Matcher], start: float,
               end: float) -> list[tuple[Labels, Sequence[SeriesSample]]]:
        key = (tuple(matchers), start, end)
        found = self._answers.get(key)
        if found is None:
            found = self._answers[key] = list(self.source.select(matchers, start, end))
        return found


def evaluate_with(source: SeriesSource) -> Evaluate:
    """An `Evaluate` for the alert rules: the instant vector of `expr` at `at`. A scalar
    result is one series without labels, as in Prometheus; anything else is an error.
    Selections are shared between the rules of one cycle (`CycleCache`)."""
    cache = CycleCache(source)

    def evaluate(expr: str, at: datetime) -> Sequence[Sample]:
        cache.begin(at.timestamp())
        value = instant(expr, cache, at.timestamp())
        if isinstance(value, InstantVector):
            return [(dict(labels), sample) for labels, sample in value.samples]
        if isinstance(value, Scalar):
            return [({}, value.value)]
        raise PromQLError(f"rule expression {expr!r} does not return an instant vector or a scalar",
                          type(value).__name__)

    return evaluate
