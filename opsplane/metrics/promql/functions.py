"""PromQL functions, with Prometheus's rules for extrapolation, counter resets and metric names."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from opsplane.metrics.promql import trends
from opsplane.metrics.promql.model import (
    METRIC_NAME,
    InstantVector,
    Labels,
    PromQLError,
    Scalar,
    Value,
)
from opsplane.metrics.promql.syntax import Call, MatrixSelector, VectorSelector

if TYPE_CHECKING:
    from opsplane.metrics.promql.engine import Evaluator

Vector = list[tuple[Labels, float]]


def drop_name(labels: Labels) -> Labels:
    """The label set without `__name__`: what most functions and arithmetic return."""
    if not labels:
        return labels
    if labels[0][0] == METRIC_NAME:
        return labels[1:]  # the usual place: lower-case label names sort after "__name__"
    if any(name == METRIC_NAME for name, _ in labels):
        return tuple(pair for pair in labels if pair[0] != METRIC_NAME)
    return labels


def total(values: Sequence[float]) -> float:
    """An exactly rounded sum, falling back to plain addition when infinities are involved."""
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):
        return sum(values)


def quantile(q: float, values: Sequence[float]) -> float:
    """Prometheus's quantile: linear interpolation between the closest ranks of sorted values."""
    if not values or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    # NaN below every number, as Go's sort.Float64s puts it (sorted() alone would leave
    # NaNs wherever the failed comparisons happen to put them)
    ordered = sorted(values, key=lambda v: (v == v, v))
    rank = q * (len(ordered) - 1)
    lower = max(0, math.floor(rank))
    upper = min(len(ordered) - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def variance(values: Sequence[float]) -> float:
    """Population variance, as stdvar and stddev use it."""
    mean = total(values) / len(values)
    return total([(v - mean) ** 2 for v in values]) / len(values)


def _extrapolated_rate(
    times: Sequence[float],
    values: Sequence[float],
    lo: int,
    hi: int,
    range_start: int,
    range_end: int,
    counter: bool,
    per_second: bool,
    zero_first: bool = False,
) -> float | None:
    """rate, increase and delta as Prometheus computes them over `times[lo:hi]` and
    `values[lo:hi]`, or None with fewer than two samples.

    `range_start` and `range_end` are the edges of the window in whole milliseconds. The
    change between the first and last sample (counting resets for counters) is stretched to
    the edges of the range when the samples reach to within 1.1 average intervals of them, and
    otherwise by half an interval; a counter is never extrapolated below zero. Prometheus 2
    (`zero_first`) applied the zero point before the 1.1-interval test, Prometheus 3 after it.
    """
    count = hi - lo
    if count < 2:
        return None
    # Durations are taken between whole milliseconds, as Prometheus does, because differences
    # of float seconds near the current epoch carry errors of a few hundred nanoseconds.
    first_t, first_v = round(times[lo] * 1000), values[lo]
    last_t, last_v = round(times[hi - 1] * 1000), values[hi - 1]
    result = last_v - first_v
    if counter:
        window = _as_list(values[lo:hi])
        # A counter that never went down has no reset; sorted() confirms that in C (NaN
        # compares false, so a window holding one takes the loop too).
        if window != sorted(window):
            previous = first_v
            for value in window:
                if value < previous:
                    result += previous
                previous = value
    to_start = (first_t - range_start) / 1000
    to_end = (range_end - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    average = sampled / (count - 1)
    threshold = average * 1.1
    can_reach_zero = counter and result > 0 and first_v >= 0
    if zero_first and can_reach_zero:
        to_start = min(to_start, sampled * (first_v / result))
    if to_start >= threshold:
        to_start = average / 2
    if not zero_first and can_reach_zero:
        to_start = min(to_start, sampled * (first_v / result))
    if to_end >= threshold:
        to_end = average / 2
    factor = (sampled + to_start + to_end) / sampled
    if per_second:
        factor /= (range_end - range_start) / 1000
    return result * factor


def _as_list(values: Sequence[float]) -> list[float]:
    """The values as a list, which Python iterates several times faster than an array."""
    if isinstance(values, list):
        return values
    if isinstance(values, array):
        return values.tolist()
    return list(values)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _instant_change(times: list[float], values: list[float], per_second: bool) -> float | None:
    """irate and idelta: the change between the last two samples, or None."""
    if len(values) < 2:
        return None
    prev_t, prev_v, last_t, last_v = times[-2], values[-2], times[-1], values[-1]
    change = last_v if per_second and last_v < prev_v else last_v - prev_v
    interval = (_ms(last_t) - _ms(prev_t)) / 1000
    if interval == 0:
        return None
    return change / interval if per_second else change


def _stddev(values: list[float]) -> float:
    return math.sqrt(variance(values))


_OVER_TIME: dict[str, Callable[[list[float]], float]] = {
    "avg_over_time": lambda vs: total(vs) / len(vs),
    "min_over_time": lambda vs: _nan_aware(min, vs),
    "max_over_time": lambda vs: _nan_aware(max, vs),
    "sum_over_time": total,
    "count_over_time": lambda vs: float(len(vs)),
    "last_over_time": lambda vs: vs[-1],
    "stddev_over_time": _stddev,
    "stdvar_over_time": variance,
    "present_over_time": lambda vs: 1.0,
}


def _nan_aware(pick: Callable[[list[float]], float], values: list[float]) -> float:
    """min or max ignoring NaN unless every value is NaN, as Prometheus's *_over_time do."""
    numbers = [v for v in values if not math.isnan(v)]
    return pick(numbers) if numbers else math.nan


def _safe(fn: Callable[[float], float]) -> Callable[[float], float]:
    """A math function that returns NaN or an infinity instead of raising, like Go's math package."""

    def wrapped(x: float) -> float:
        try:
            return fn(x)
        except ValueError:
            if x == 0:
                return -math.inf
            return math.nan
        except OverflowError:
            return math.inf

    return wrapped


_SIMPLE: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": lambda x: x if math.isnan(x) or math.isinf(x) else float(math.ceil(x)),
    "floor": lambda x: x if math.isnan(x) or math.isinf(x) else float(math.floor(x)),
    "sqrt": _safe(math.sqrt),
    "exp": _safe(math.exp),
    "ln": _safe(math.log),
    "log2": _safe(math.log2),
    "log10": _safe(math.log10),
}


def call(ev: Evaluator, node: Call, t: float) -> Value:
    """The value of a function call at time `t`."""
    name = node.name
    if name == "time":
        return Scalar(t)
    if name in _SIMPLE:
        fn = _SIMPLE[name]
        return InstantVector([(drop_name(labels), fn(v)) for labels, v in _vector(ev, node, 0, t)])
    if name in ("clamp", "clamp_min", "clamp_max"):
        return _clamp(ev, node, t)
    if name == "vector":
        return InstantVector([((), _scalar(ev, node, 0, t))])
    if name == "scalar":
        samples = _vector(ev, node, 0, t)
        return Scalar(samples[0][1] if len(samples) == 1 else math.nan)
    if name == "absent":
        return _absent(node, bool(_vector(ev, node, 0, t)))
    if name == "histogram_quantile":
        return _histogram_quantile(_scalar(ev, node, 0, t), _vector(ev, node, 1, t))
    return _range_function(ev, node, t)


def _vector(ev: Evaluator, node: Call, index: int, t: float) -> Vector:
    value = ev.evaluate(node.args[index], t)
    if not isinstance(value, InstantVector):
        raise PromQLError(f"{node.name}() expects an instant vector as argument {index + 1}", node.name)
    return value.samples


def _scalar(ev: Evaluator, node: Call, index: int, t: float) -> float:
    value = ev.evaluate(node.args[index], t)
    if not isinstance(value, Scalar):
        raise PromQLError(f"{node.name}() expects a scalar as argument {index + 1}", node.name)
    return value.value


def _clamp(ev: Evaluator, node: Call, t: float) -> InstantVector:
    samples = _vector(ev, node, 0, t)
    if node.name == "clamp":
        low, high = _scalar(ev, node, 1, t), _scalar(ev, node, 2, t)
        if high < low:
            return InstantVector([])
    elif node.name == "clamp_min":
        low, high = _scalar(ev, node, 1, t), math.inf
    else:
        low, high = -math.inf, _scalar(ev, node, 1, t)
    # Go's math.Max/Min propagate NaN from either side; Python's max/min do not.
    out = []
    for labels, v in samples:
        if math.isnan(v) or math.isnan(low) or math.isnan(high):
            clamped = math.nan
        else:
            clamped = max(low, min(high, v))
        out.append((drop_name(labels), clamped))
    return InstantVector(out)


def _absent_labels(node: Call) -> Labels:
    """Labels absent() reports: the argument's equality matchers, except names matched twice."""
    arg = node.args[0]
    selector = arg.selector if isinstance(arg, MatrixSelector) else arg
    if not isinstance(selector, VectorSelector):
        return ()
    pairs: dict[str, str] = {}
    repeated: set[str] = set()
    for matcher in selector.matchers:
        if matcher.name == METRIC_NAME:
            continue
        if matcher.name in pairs or matcher.name in repeated:
            repeated.add(matcher.name)
            pairs.pop(matcher.name, None)
        elif matcher.op == "=":
            pairs[matcher.name] = matcher.value
    return tuple(sorted(pairs.items()))


def _absent(node: Call, present: bool) -> InstantVector:
    return InstantVector([] if present else [(_absent_labels(node), 1.0)])


def _range_function(ev: Evaluator, node: Call, t: float) -> Value:
    name = node.name
    arg_index = 1 if name == "quantile_over_time" else 0
    param_index = {"quantile_over_time": 0, "predict_linear": 1}.get(name)
    matrix_node = node.args[arg_index]
    if not isinstance(matrix_node, MatrixSelector):
        raise PromQLError(f"{name}() expects a range vector selector", name)
    if name == "absent_over_time":
        return _absent(node, bool(ev.range_arrays(matrix_node, t)))
    q = _scalar(ev, node, param_index, t) if param_index is not None else 0.0
    out: Vector = []
    if name in ("rate", "increase", "delta"):
        # The hot path of alert rules: the window's edges are the same for every series.
        counter, per_second, zero_first = name != "delta", name == "rate", ev.prometheus < 3
        range_end = _ms(t) - _ms(matrix_node.selector.offset)
        range_start = range_end - _ms(matrix_node.range)
        for labels, times, values, lo, hi in ev.range_windows(matrix_node, t):
            value = _extrapolated_rate(times, values, lo, hi, range_start, range_end, counter, per_second,
                                       zero_first)
            if value is not None:
                out.append((drop_name(labels), value))
        return InstantVector(out)
    for labels, times, values in ev.range_arrays(matrix_node, t):
        value = _over_range(name, times, values, t, matrix_node, q, ev.prometheus)
        if value is not None:
            out.append((labels if name == "last_over_time" else drop_name(labels), value))
    return InstantVector(out)


def _over_range(
    name: str, times: list[float], values: list[float], t: float, node: MatrixSelector, q: float, version: int
) -> float | None:
    if name in ("irate", "idelta"):
        return _instant_change(times, values, per_second=name == "irate")
    if name == "quantile_over_time":
        return quantile(q, values)
    if name == "deriv":
        return trends.deriv(times, values)
    if name == "predict_linear":
        return trends.predict_linear(times, values, t, q)
    if name == "changes":
        return trends.changes(values)
    if name == "resets":
        return trends.resets(values)
    fn = _OVER_TIME.get(name)
    if fn is None:
        raise PromQLError(f"unsupported function '{name}'", name)
    return fn(values)


def _histogram_quantile(q: float, samples: Vector) -> InstantVector:
    """Quantiles of classic histograms: one result per label set without `le`."""
    groups: dict[Labels, list[tuple[float, float]]] = {}
    for labels, value in samples:
        bound_text = ""
        rest = []
        for name, label in labels:
            if name == "le":
                bound_text = label
            elif name != METRIC_NAME:
                rest.append((name, label))
        try:
            bound = float(bound_text)
        except ValueError:
            continue  # Prometheus ignores series without a numeric `le` (with a warning).
        groups.setdefault(tuple(rest), []).append((bound, value))
    return InstantVector([(labels, bucket_quantile(q, buckets)) for labels, buckets in groups.items()])


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """The q-quantile of cumulative (upper bound, count) buckets, interpolated linearly inside one."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    merged: dict[float, float] = {}
    for bound, count in buckets:
        merged[bound] = merged.get(bound, 0.0) + count
    ordered = sorted(merged.items())
    if not ordered or not math.isinf(ordered[-1][0]) or ordered[-1][0] < 0:
        return math.nan
    bounds = [b for b, _ in ordered]
    counts = _monotonic([c for _, c in ordered])
    if len(bounds) < 2:
        return math.nan
    observations = counts[-1]
    if observations == 0 or math.isnan(observations):
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(bounds) - 1) if counts[i] >= rank), len(bounds) - 1)
    if b == len(bounds) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start = bounds[b - 1]
        count -= counts[b - 1]
        rank -= counts[b - 1]
    # 0/0 (a quantile of 0 whose bucket holds nothing) is NaN in Go's floats, not an error
    return start + (end - start) * (rank / count if count else math.nan)


def _monotonic(counts: list[float]) -> list[float]:
    """Bucket counts forced to never decrease, with differences below 1e-12 relative ignored."""
    fixed = list(counts)
    previous = fixed[0]
    for i in range(1, len(fixed)):
        current = fixed[i]
        if current == previous:
            continue
        if _almost_equal(previous, current, 1e-12) or current < previous:
            fixed[i] = previous
            continue
        previous = current
    return fixed


def _almost_equal(a: float, b: float, epsilon: float) -> bool:
    min_normal = 2.2250738585072014e-308
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < min_normal:
        return diff < epsilon * min_normal
    return diff / min(abs_sum, 1.7976931348623157e308) < epsilon
