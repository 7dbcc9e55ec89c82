"""Rules evaluated by opsplane's PromQL engine over any series source (the scraper's window,
or a fixed data set), as Prometheus's rule manager evaluates them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from opsplane.alerts.state import Evaluate, Sample
from opsplane.metrics.promql import (
    InstantEvaluation,
    InstantVector,
    PromQLError,
    Scalar,
    SeriesSource,
    parse,
)

# Rule expressions are parsed once, not at every cycle; an inventory has a few hundred.
_parsed = lru_cache(maxsize=1024)(parse)


def evaluate_with(source: SeriesSource) -> Evaluate:
    """An `Evaluate` for the alert rules: the instant vector of `expr` at `at`. A scalar
    result is one series without labels, as in Prometheus; anything else is an error.

    The rules of one cycle are evaluated at the same instant and many share their selectors
    and subexpressions (the rule pack's error ratios and latency quantiles differ only in
    their thresholds), so each selection and subexpression is computed once per evaluation
    time (`InstantEvaluation`). A new evaluation time starts afresh, so nothing read is older
    than the cycle.
    """
    cycle: dict[datetime, InstantEvaluation] = {}

    def evaluate(expr: str, at: datetime) -> Sequence[Sample]:
        evaluation = cycle.get(at)
        if evaluation is None:
            cycle.clear()
            evaluation = cycle[at] = InstantEvaluation(source, at.timestamp())
        value = evaluation.value(_parsed(expr))
        if isinstance(value, InstantVector):
            return [(dict(labels), sample) for labels, sample in value.samples]
        if isinstance(value, Scalar):
            return [({}, value.value)]
        raise PromQLError(f"rule expression {expr!r} does not return an instant vector or a scalar",
                          type(value).__name__)

    return evaluate
