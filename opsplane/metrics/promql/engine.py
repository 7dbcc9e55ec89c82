"""Evaluating PromQL expressions over a SeriesSource at one time or over a range of steps.

Each selector reads its series from the source once per query, for the whole window the
query needs; every step then cuts its samples out of those arrays by bisection.

`InstantEvaluation` evaluates several expressions at one time and computes a subexpression
they share once: the rules of an alerting cycle repeat `rate(...[5m])` and `sum by (...)` of
it with different thresholds. Sharing is safe because no function or operator modifies the
values it is given; they build new ones.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from opsplane.metrics.promql import functions, operators
from opsplane.metrics.promql.model import (
    InstantVector,
    Labels,
    Matrix,
    PromQLError,
    Sample,
    SampleColumns,
    Scalar,
    SeriesSource,
    StringValue,
    Value,
    format_labels,
    is_stale,
)
from opsplane.metrics.promql.syntax import (
    Aggregate,
    Binary,
    Call,
    Expr,
    MatrixSelector,
    Negation,
    NumberLiteral,
    StringLiteral,
    VectorSelector,
    parse,
)

DEFAULT_LOOKBACK = 300.0

SUPPORTED_VERSIONS = frozenset({2, 3})
"""Prometheus major versions whose window and extrapolation rules the engine can follow."""

Series = tuple[Labels, Sequence[float], Sequence[float], int, int, bool]
"""Labels, sample times and values with the slice [lo:hi] of them that was selected, and
whether any of those values is a stale marker."""

Window = tuple[Labels, Sequence[float], Sequence[float], int, int]
"""Labels, sample times and values, and the slice [lo:hi] of them inside a range."""


class Evaluator:
    """The state of one query: the source, its time window and the series each selector read."""

    def __init__(self, source: SeriesSource, start: float, end: float, lookback: float, prometheus: int = 3,
                 *, share: bool = False):
        if prometheus not in SUPPORTED_VERSIONS:
            raise PromQLError(
                f"cannot follow Prometheus {prometheus}: choose one of {sorted(SUPPORTED_VERSIONS)}",
                "version",
            )
        self.source = source
        self.start = start
        self.end = end
        self.lookback = lookback
        self.prometheus = prometheus
        # Prometheus 3 made the lookback and range windows open on the left; 2.x included
        # a sample lying exactly on the lower edge.
        self.left_open = prometheus >= 3
        self._loaded: dict[tuple[VectorSelector, float], list[Series]] = {}
        # With `share`, the value of every subexpression at every time, for later expressions.
        self._values: dict[tuple[Expr, float], Value] | None = {} if share else None

    def series_for(self, selector: VectorSelector, width: float) -> list[Series]:
        """The series of `selector` with every sample any step of this query can need."""
        key = (selector, width)
        if key not in self._loaded:
            first = to_millisecond(self.start - selector.offset - width)
            last = to_millisecond(self.end - selector.offset)
            loaded: list[Series] = []
            for labels, samples in self.source.select(selector.matchers, first, last):
                if not samples:
                    continue
                if isinstance(samples, SampleColumns):
                    times, values, lo, hi = samples.times, samples.values, samples.lo, samples.hi
                    stale = samples.stale
                else:
                    times, values = (list(column) for column in zip(*samples, strict=True))
                    lo, hi, stale = 0, len(times), None
                if stale is None:
                    stale = _has_stale(values, lo, hi)
                loaded.append((labels, times, values, lo, hi, stale))
            self._loaded[key] = loaded
        return self._loaded[key]

    def evaluate(self, node: Expr, t: float) -> Value:
        """The value of `node` at time `t`."""
        values = self._values
        if values is None or isinstance(node, NumberLiteral | StringLiteral):
            return self._evaluate(node, t)
        key = (node, t)
        found = values.get(key)
        if found is None:
            found = values[key] = self._evaluate(node, t)
        return found

    def _evaluate(self, node: Expr, t: float) -> Value:
        if isinstance(node, NumberLiteral):
            return Scalar(node.value)
        if isinstance(node, StringLiteral):
            return StringValue(node.value)
        if isinstance(node, VectorSelector):
            return InstantVector(self.instant_samples(node, t))
        if isinstance(node, MatrixSelector):
            return Matrix(self.range_samples(node, t))
        if isinstance(node, Call):
            return _unique(functions.call(self, node, t))
        if isinstance(node, Aggregate):
            return operators.aggregate(self, node, t)
        if isinstance(node, Binary):
            return _unique(operators.binary(self, node, t))
        if isinstance(node, Negation):
            return _unique(_negate(self.evaluate(node.expr, t)))
        raise PromQLError(f"cannot evaluate {type(node).__name__}", type(node).__name__)

    def instant_samples(self, node: VectorSelector, t: float) -> list[tuple[Labels, float]]:
        """The newest sample in (t - lookback, t] of each series, unless it is a stale marker.

        Under Prometheus 2 rules the window is [t - lookback, t].
        """
        # Window edges are rounded to the millisecond so that a sample lying exactly on one is
        # classified as Prometheus, which counts in integer milliseconds, classifies it.
        at = to_millisecond(t - node.offset)
        oldest = to_millisecond(at - self.lookback)
        out: list[tuple[Labels, float]] = []
        for labels, times, values, lo, hi, _ in self.series_for(node, self.lookback):
            i = bisect_right(times, at, lo, hi) - 1
            if i < lo or times[i] < oldest or (self.left_open and times[i] == oldest):
                continue
            value = values[i]
            if value != value and is_stale(value):
                continue
            out.append((labels, value))
        return out

    def range_samples(self, node: MatrixSelector, t: float) -> list[tuple[Labels, list[Sample]]]:
        """The samples in (t - range, t] of each series, stale markers left out."""
        return [
            (labels, list(zip(times, values, strict=True)))
            for labels, times, values in self.range_arrays(node, t)
        ]

    def range_arrays(self, node: MatrixSelector, t: float) -> list[tuple[Labels, list[float], list[float]]]:
        """Like range_samples, as separate time and value lists, which functions read faster."""
        return [(labels, list(times[lo:hi]), list(values[lo:hi]))
                for labels, times, values, lo, hi in self.range_windows(node, t)]

    def range_windows(self, node: MatrixSelector, t: float) -> list[Window]:
        """The samples in (t - range, t] of each series as `times[lo:hi]` and `values[lo:hi]`,
        without copying them out (rate and increase, the alert rules' hot path, read only
        the ends and walk the values once). Series with stale markers get new lists."""
        selector = node.selector
        at = to_millisecond(t - selector.offset)
        edge = to_millisecond(at - node.range)
        cut = bisect_right if self.left_open else bisect_left
        out: list[Window] = []
        left_open = self.left_open
        for labels, times, values, first, last, has_stale in self.series_for(selector, node.range):
            # Mostly the series holds just this window (an instant query): no search needed.
            oldest = times[first]
            if oldest > edge or (oldest == edge and not left_open):
                lo = first
            else:
                lo = cut(times, edge, first, last)
            hi = last if times[last - 1] <= at else bisect_right(times, at, lo, last)
            if lo >= hi:
                continue
            if has_stale:
                kept = [i for i in range(lo, hi) if not is_stale(values[i])]
                if kept:
                    out.append((labels, [times[i] for i in kept], [values[i] for i in kept], 0, len(kept)))
            else:
                out.append((labels, times, values, lo, hi))
        return out


def _has_stale(values: Sequence[float], lo: int, hi: int) -> bool:
    # sum() runs in C and is NaN exactly when some value is NaN (or infinities cancel), so the
    # slow bit-pattern test runs only for series that hold a NaN at all.
    window = values[lo:hi]
    total = sum(window)
    if total == total:
        return False
    return any(v != v and is_stale(v) for v in window)


def _unique(value: Value) -> Value:
    """The value unchanged, after checking that dropping metric names left no two equal label sets."""
    if isinstance(value, InstantVector) and len(value.samples) > 1:
        seen: set[Labels] = set()
        for labels, _ in value.samples:
            if labels in seen:
                raise PromQLError(
                    f"vector cannot contain metrics with the same labelset {format_labels(labels)}",
                    "labelset",
                )
            seen.add(labels)
    return value


def _negate(value: Value) -> Value:
    if isinstance(value, Scalar):
        return Scalar(-value.value)
    if isinstance(value, InstantVector):
        return InstantVector([(functions.drop_name(labels), -v) for labels, v in value.samples])
    raise PromQLError("unary minus applies to scalars and instant vectors only", "unary minus")


def _tree(expr: str | Expr) -> Expr:
    return parse(expr) if isinstance(expr, str) else expr


def instant(
    expr: str | Expr,
    source: SeriesSource,
    at: float,
    *,
    lookback: float = DEFAULT_LOOKBACK,
    prometheus: int = 3,
) -> Value:
    """The value of `expr` at time `at` (seconds), as Prometheus's instant query returns it."""
    tree = _tree(expr)
    at = to_millisecond(at)
    return Evaluator(source, at, at, lookback, prometheus).evaluate(tree, at)


class InstantEvaluation:
    """Expressions evaluated one after the other at the same time `at`, over the same source,
    each subexpression computed once for all of them (an alerting cycle)."""

    def __init__(self, source: SeriesSource, at: float, *, lookback: float = DEFAULT_LOOKBACK,
                 prometheus: int = 3) -> None:
        self.at = to_millisecond(at)
        self._evaluator = Evaluator(source, self.at, self.at, lookback, prometheus, share=True)

    def value(self, expr: str | Expr) -> Value:
        """The value of `expr` at `at`, as `instant` gives it."""
        return self._evaluator.evaluate(_tree(expr), self.at)


def range_query(
    expr: str | Expr,
    source: SeriesSource,
    start: float,
    end: float,
    step: float,
    *,
    lookback: float = DEFAULT_LOOKBACK,
    prometheus: int = 3,
) -> Matrix:
    """The value of `expr` at start, start + step, ... up to end, one series per label set.

    Only scalar and instant-vector expressions can be evaluated over a range, as in Prometheus.
    """
    if not all(math.isfinite(x) for x in (start, end, step)):
        raise PromQLError(
            f"range query start, end and step must be finite, got {start}, {end}, {step}", "range"
        )
    start, end, step = to_millisecond(start), to_millisecond(end), to_millisecond(step)
    if step <= 0:
        raise PromQLError(f"range query step must be at least 1 ms, got {step}", "step")
    if end < start:
        raise PromQLError(f"range query end {end} is before its start {start}", "range")
    tree = _tree(expr)
    evaluator = Evaluator(source, start, end, lookback, prometheus)
    collected: dict[Labels, list[Sample]] = {}
    for t in _steps(start, end, step):
        value = evaluator.evaluate(tree, t)
        for labels, v in _step_samples(value):
            collected.setdefault(labels, []).append((t, v))
    return Matrix(sorted(collected.items()))


MAX_POINTS = 11000
"""Prometheus's own limit on the steps of one range query."""


def _steps(start: float, end: float, step: float) -> Sequence[float]:
    count = int(math.floor((end - start) / step + 1e-9)) + 1
    if count > MAX_POINTS:
        raise PromQLError(
            f"range query of {count} steps exceeds the maximum of {MAX_POINTS}; use a larger step", "step"
        )
    return [to_millisecond(start + i * step) for i in range(count)]


def to_millisecond(seconds: float) -> float:
    """Times rounded to whole milliseconds, the resolution Prometheus evaluates at."""
    return round(float(seconds) * 1000.0) / 1000.0


def _step_samples(value: Value) -> list[tuple[Labels, float]]:
    if isinstance(value, Scalar):
        return [((), value.value)]
    if isinstance(value, InstantVector):
        return value.samples
    kind = "range vector" if isinstance(value, Matrix) else "string"
    raise PromQLError(
        f"invalid expression type {kind} for range query, must be scalar or instant vector", kind
    )
