"""Putting Prometheus's answers and the engine's results in one shape, and naming how they differ.

A result is a `Result`: its kind ("scalar", "vector", "matrix", "string" or "error") and a
mapping from label set to value (instant queries) or to (time, value) points (matrices).
Two results agree when kinds and label sets are the same and every value is within 1e-9
relative error, NaN matching NaN; an empty vector and an empty matrix both mean "nothing".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from opsplane.metrics.promql import InstantVector, Labels, Matrix, Scalar, StringValue, Value

REL_TOLERANCE = 1e-9
_MAX_LISTED = 6


@dataclass
class Result:
    """One side's answer to one query."""

    kind: str
    points: dict[Labels, Any] = field(default_factory=dict)
    error: str = ""


def same_value(a: float, b: float) -> bool:
    """Equal within REL_TOLERANCE; NaN equals NaN, infinities only themselves."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return a == b or abs(a - b) <= REL_TOLERANCE * max(abs(a), abs(b))


def _labels(metric: dict[str, str]) -> Labels:
    return tuple(sorted(metric.items()))


def from_prometheus(data: dict[str, Any]) -> Result:
    """The `data` member of a Prometheus query answer as a Result."""
    kind = data["resultType"]
    result = data["result"]
    if kind in ("scalar", "string"):
        value = float(result[1]) if kind == "scalar" else result[1]
        return Result(kind, {(): value})
    if kind == "vector":
        return Result(kind, {_labels(r["metric"]): float(r["value"][1]) for r in result})
    return Result(kind, {_labels(r["metric"]): [(float(t), float(v)) for t, v in r["values"]]
                         for r in result})


def from_engine(value: Value) -> Result:
    """An engine Value as a Result."""
    if isinstance(value, Scalar):
        return Result("scalar", {(): value.value})
    if isinstance(value, StringValue):
        return Result("string", {(): value.value})
    if isinstance(value, InstantVector):
        points: dict[Labels, Any] = {}
        for labels, v in value.samples:
            if labels in points:
                return Result("error", error=f"two samples with the labels {_show(labels)}")
            points[labels] = v
        return Result("vector", points)
    if isinstance(value, Matrix):
        return Result("matrix", {labels: list(samples) for labels, samples in value.series})
    return Result("error", error=f"unexpected result type {type(value).__name__}")


def differences(prometheus: Result, engine: Result) -> list[str]:
    """Each way the engine's result differs from Prometheus's, in words; empty when they agree."""
    if prometheus.kind == "error" or engine.kind == "error":
        if prometheus.kind == engine.kind:
            return []
        if prometheus.kind == "error":
            return [f"Prometheus refused it ({prometheus.error}) but opsplane returned a {engine.kind}"]
        return [f"opsplane failed ({engine.error}) where Prometheus returned a {prometheus.kind}"]
    if not (prometheus.points or engine.points):
        return []
    if prometheus.kind != engine.kind:
        return [f"Prometheus returned a {prometheus.kind}, opsplane a {engine.kind}"]
    found: list[str] = []
    missing = [labels for labels in prometheus.points if labels not in engine.points]
    extra = [labels for labels in engine.points if labels not in prometheus.points]
    if missing:
        found.append(f"{len(missing)} series only in Prometheus: {_show_many(missing, prometheus)}")
    if extra:
        found.append(f"{len(extra)} series only in opsplane: {_show_many(extra, engine)}")
    for labels, expected in prometheus.points.items():
        if labels not in engine.points:
            continue
        got = engine.points[labels]
        if prometheus.kind == "matrix":
            problem = _compare_points(expected, got)
        else:
            problem = _compare_one(expected, got)
        if problem:
            found.append(f"{_show(labels)}: {problem}")
    return found[: _MAX_LISTED * 2]


def _compare_one(expected: Any, got: Any) -> str:
    if isinstance(expected, str) or isinstance(got, str):
        return "" if expected == got else f"Prometheus {expected!r}, opsplane {got!r}"
    return "" if same_value(expected, got) else f"Prometheus {expected!r}, opsplane {got!r}"


def _compare_points(expected: list[tuple[float, float]], got: list[tuple[float, float]]) -> str:
    theirs = {round(t, 3): v for t, v in expected}  # Prometheus keeps milliseconds
    ours = {round(t, 3): v for t, v in got}
    only_theirs = sorted(set(theirs) - set(ours))
    only_ours = sorted(set(ours) - set(theirs))
    wrong = [t for t in sorted(set(theirs) & set(ours)) if not same_value(theirs[t], ours[t])]
    parts = []
    if only_theirs:
        parts.append(f"points only in Prometheus at {_times(only_theirs)}")
    if only_ours:
        parts.append(f"points only in opsplane at {_times(only_ours)}")
    if wrong:
        shown = ", ".join(f"t={t:.3f}: Prometheus {theirs[t]!r}, opsplane {ours[t]!r}" for t in wrong[:3])
        parts.append(f"{len(wrong)} values differ ({shown})")
    return "; ".join(parts)


def _times(times: list[float]) -> str:
    head = ", ".join(f"{t:.3f}" for t in times[:4])
    return head + (f" and {len(times) - 4} more" if len(times) > 4 else "")


def _show(labels: Labels) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels) + "}"


def _show_many(labels: list[Labels], side: Result) -> str:
    shown = ", ".join(f"{_show(one)}={_brief(side.points[one])}" for one in labels[:_MAX_LISTED])
    return shown + (f" and {len(labels) - _MAX_LISTED} more" if len(labels) > _MAX_LISTED else "")


def _brief(value: Any) -> str:
    if isinstance(value, list):
        return f"[{len(value)} points]"
    return repr(value)
