"""Rules evaluated by opsplane's PromQL engine over any series source (the scraper's window,
or a fixed data set), as Prometheus's rule manager evaluates them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from opsplane.alerts.state import Evaluate, Sample
from opsplane.metrics.promql import InstantVector, PromQLError, Scalar, SeriesSource, instant


def evaluate_with(source: SeriesSource) -> Evaluate:
    """An `Evaluate` for the alert rules: the instant vector of `expr` at `at`. A scalar
    result is one series without labels, as in Prometheus; anything else is an error."""

    def evaluate(expr: str, at: datetime) -> Sequence[Sample]:
        value = instant(expr, source, at.timestamp())
        if isinstance(value, InstantVector):
            return [(dict(labels), sample) for labels, sample in value.samples]
        if isinstance(value, Scalar):
            return [({}, value.value)]
        raise PromQLError(f"rule expression {expr!r} does not return an instant vector or a scalar",
                          type(value).__name__)

    return evaluate
