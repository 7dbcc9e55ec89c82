"""Range functions about how a series moves: changes, resets, deriv and predict_linear."""

from __future__ import annotations

import math


def changes(values: list[float]) -> float:
    """How often the value changed within the range; two NaN in a row are no change."""
    count = 0
    previous = values[0]
    for value in values[1:]:
        if value != previous and not (math.isnan(value) and math.isnan(previous)):
            count += 1
        previous = value
    return float(count)


def resets(values: list[float]) -> float:
    """How often a counter went down within the range."""
    count = 0
    previous = values[0]
    for value in values[1:]:
        if value < previous:
            count += 1
        previous = value
    return float(count)


def linear_regression(times: list[float], values: list[float], origin: float) -> tuple[float, float]:
    """Least-squares slope (per second) and value at `origin`, as Prometheus fits them.

    Times are taken in whole milliseconds relative to `origin`; a constant series has slope 0
    (or NaN when the constant is infinite).
    """
    first = values[0]
    if all(v == first for v in values):
        if math.isinf(first):
            return math.nan, math.nan
        return 0.0, first
    origin_ms = round(origin * 1000)
    xs = [(round(t * 1000) - origin_ms) / 1000 for t in times]
    n = float(len(values))
    sum_x = _sum(xs)
    sum_y = _sum(values)
    sum_xy = _sum([x * y for x, y in zip(xs, values, strict=True)])
    sum_x2 = _sum([x * x for x in xs])
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = cov_xy / var_x if var_x != 0 else math.nan
    return slope, sum_y / n - slope * sum_x / n


def deriv(times: list[float], values: list[float]) -> float | None:
    """Per-second slope of a gauge over the range, or None with fewer than two samples."""
    if len(values) < 2:
        return None
    slope, _ = linear_regression(times, values, times[0])
    return slope


def predict_linear(times: list[float], values: list[float], at: float, seconds: float) -> float | None:
    """The value the fitted line reaches `seconds` after `at`, or None with fewer than two samples."""
    if len(values) < 2:
        return None
    slope, intercept = linear_regression(times, values, at)
    return slope * seconds + intercept


def _sum(values: list[float]) -> float:
    try:
        return math.fsum(values)
    except (OverflowError, ValueError):
        return sum(values)
