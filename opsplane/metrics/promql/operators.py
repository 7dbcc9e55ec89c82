"""Binary operators with vector matching, and aggregations, following Prometheus's rules."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from opsplane.metrics.promql.functions import drop_name, quantile, total, variance
from opsplane.metrics.promql.model import (
    METRIC_NAME,
    InstantVector,
    Labels,
    PromQLError,
    Scalar,
    Value,
    format_labels,
)
from opsplane.metrics.promql.syntax import Aggregate, Binary

if TYPE_CHECKING:
    from opsplane.metrics.promql.engine import Evaluator

Vector = list[tuple[Labels, float]]

COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPS = frozenset({"and", "or", "unless"})


def _divide(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _modulo(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.fmod(a, b)


def _power(a: float, b: float) -> float:
    try:
        result = a**b
    except ZeroDivisionError:
        return math.inf
    except OverflowError:
        return math.inf if a > 0 or float(b).is_integer() and b % 2 == 0 else -math.inf
    return result if isinstance(result, float) else math.nan


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _divide,
    "%": _modulo,
    "^": _power,
}

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def _apply(op: str, a: float, b: float) -> tuple[float, bool]:
    """(value, keep) for one pair, as Prometheus's vectorElemBinop: comparisons keep the left value."""
    if op in COMPARE:
        return a, COMPARE[op](a, b)
    return ARITHMETIC[op](a, b), True


def binary(ev: Evaluator, node: Binary, t: float) -> Value:
    """The value of a binary operation at time `t`."""
    lhs, rhs = ev.evaluate(node.lhs, t), ev.evaluate(node.rhs, t)
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        value, keep = _apply(node.op, lhs.value, rhs.value)
        if node.op in COMPARE:
            value = 1.0 if keep else 0.0
        return Scalar(value)
    if isinstance(lhs, InstantVector) and isinstance(rhs, Scalar):
        return InstantVector(_vector_scalar(node, lhs.samples, rhs.value, swap=False))
    if isinstance(lhs, Scalar) and isinstance(rhs, InstantVector):
        return InstantVector(_vector_scalar(node, rhs.samples, lhs.value, swap=True))
    if isinstance(lhs, InstantVector) and isinstance(rhs, InstantVector):
        if node.op in SET_OPS:
            return InstantVector(_set_op(node, lhs.samples, rhs.samples))
        return InstantVector(_vector_vector(node, lhs.samples, rhs.samples))
    raise PromQLError(f"operator '{node.op}' cannot combine these operand types", node.op)


def _vector_scalar(node: Binary, samples: Vector, scalar: float, swap: bool) -> Vector:
    out: Vector = []
    comparison = node.op in COMPARE
    for labels, v in samples:
        left, right = (scalar, v) if swap else (v, scalar)
        value, keep = _apply(node.op, left, right)
        if comparison and swap:
            value = v  # the vector's own value is returned, whichever side it is on
        if node.return_bool:
            value, keep = (1.0 if keep else 0.0), True
        if not keep:
            continue
        out.append((labels if comparison and not node.return_bool else drop_name(labels), value))
    return out


def signature(labels: Labels, on: bool, names: tuple[str, ...]) -> Labels:
    """The part of a label set two sides are matched on: `on` keeps names, `ignoring` drops them."""
    if on:
        return tuple(pair for pair in labels if pair[0] in names)
    return tuple(pair for pair in labels if pair[0] != METRIC_NAME and pair[0] not in names)


def _set_op(node: Binary, lhs: Vector, rhs: Vector) -> Vector:
    right_sigs = {signature(labels, node.on, node.matching) for labels, _ in rhs}
    if node.op == "and":
        return [s for s in lhs if signature(s[0], node.on, node.matching) in right_sigs]
    if node.op == "unless":
        return [s for s in lhs if signature(s[0], node.on, node.matching) not in right_sigs]
    left_sigs = {signature(labels, node.on, node.matching) for labels, _ in lhs}
    return lhs + [s for s in rhs if signature(s[0], node.on, node.matching) not in left_sigs]


def _vector_vector(node: Binary, lhs: Vector, rhs: Vector) -> Vector:
    """One-to-one and grouped matching; the "many" side is walked and looked up on the "one" side."""
    if not lhs or not rhs:
        return []  # nothing can match, so, as in Prometheus, no duplicate checks either
    many, one = (rhs, lhs) if node.card == "one-to-many" else (lhs, rhs)
    one_side = "left" if node.card == "one-to-many" else "right"
    by_sig: dict[Labels, tuple[Labels, float]] = {}
    for labels, v in one:
        sig = signature(labels, node.on, node.matching)
        if sig in by_sig:
            raise PromQLError(
                f"found duplicate series for the match group {format_labels(sig)} on the {one_side} "
                f"hand-side of the operation: [{format_labels(by_sig[sig][0])}, {format_labels(labels)}];"
                "many-to-many matching not allowed: matching labels must be unique on one side",
                "many-to-many matching",
            )
        by_sig[sig] = (labels, v)
    out: Vector = []
    matched: set[Labels] = set()
    inserted: set[Labels] = set()
    for labels, v in many:
        sig = signature(labels, node.on, node.matching)
        partner = by_sig.get(sig)
        if partner is None:
            continue
        left, right = (partner[1], v) if node.card == "one-to-many" else (v, partner[1])
        value, keep = _apply(node.op, left, right)
        if node.return_bool:
            value, keep = (1.0 if keep else 0.0), True
        if not keep:
            continue
        result = _result_labels(node, labels, partner[0])
        if node.card == "one-to-one":
            if sig in matched:
                raise PromQLError(
                    f"multiple matches for labels {format_labels(sig)}: many-to-one matching must be "
                    "explicit (group_left/group_right)",
                    "many-to-one matching",
                )
            matched.add(sig)
        elif result in inserted:
            raise PromQLError(
                f"multiple matches for labels {format_labels(result)}: "
                "grouping labels must ensure unique matches",
                "grouping labels",
            )
        inserted.add(result)
        out.append((result, value))
    return out


def _result_labels(node: Binary, many: Labels, one: Labels) -> Labels:
    labels = dict(many)
    if node.op not in COMPARE or node.return_bool:
        labels.pop(METRIC_NAME, None)
    if node.card == "one-to-one":
        if node.on:
            labels = {k: v for k, v in labels.items() if k in node.matching}
        else:
            for name in node.matching:
                labels.pop(name, None)
    one_values = dict(one)
    for name in node.include:
        if one_values.get(name, ""):
            labels[name] = one_values[name]
        else:
            labels.pop(name, None)
    return tuple(sorted(labels.items()))


def aggregate(ev: Evaluator, node: Aggregate, t: float) -> Value:
    """The value of an aggregation at time `t`."""
    inner = ev.evaluate(node.expr, t)
    if not isinstance(inner, InstantVector):
        raise PromQLError(f"{node.op}() aggregates an instant vector", node.op)
    param = None
    if node.param is not None:
        value = ev.evaluate(node.param, t)
        if not isinstance(value, Scalar):
            raise PromQLError(f"{node.op}() expects a scalar parameter", node.op)
        param = value.value
    groups: dict[Labels, Vector] = {}
    for labels, v in inner.samples:
        groups.setdefault(_group_key(node, labels), []).append((labels, v))
    if node.op in ("topk", "bottomk"):
        return InstantVector(_top(node.op, param, groups))
    out: Vector = []
    for key, members in groups.items():
        out.append((key, _reduce(node.op, [v for _, v in members], param)))
    return InstantVector(out)


def _group_key(node: Aggregate, labels: Labels) -> Labels:
    named = node.labels
    if node.without:
        return tuple([pair for pair in labels if pair[0] != METRIC_NAME and pair[0] not in named])
    return tuple([pair for pair in labels if pair[0] in named])


def _extreme(values: list[float], pick: Callable[[float, float], float]) -> float:
    numbers = [v for v in values if not math.isnan(v)]
    if not numbers:
        return math.nan
    result = numbers[0]
    for v in numbers[1:]:
        result = pick(result, v)
    return result


def _reduce(op: str, values: list[float], param: float | None) -> float:
    if op == "sum":
        return total(values)
    if op == "avg":
        return total(values) / len(values)
    if op == "count":
        return float(len(values))
    if op == "group":
        return 1.0
    if op == "min":
        return _extreme(values, min)
    if op == "max":
        return _extreme(values, max)
    if op == "stdvar":
        return variance(values)
    if op == "stddev":
        return math.sqrt(variance(values))
    if op == "quantile":
        return quantile(math.nan if param is None else param, values)
    raise PromQLError(f"unsupported aggregation '{op}'", op)


def _top(op: str, param: float | None, groups: dict[Labels, Vector]) -> Vector:
    """topk/bottomk: the k largest (smallest) samples per group, original labels kept, NaN last."""
    if param is None or math.isnan(param):
        raise PromQLError(f"{op}() needs a numeric parameter k", op)
    k = int(param)
    if k < 1:
        return []
    out: Vector = []
    for members in groups.values():
        if op == "topk":
            ranked = sorted(members, key=lambda s: (math.isnan(s[1]), -s[1] if not math.isnan(s[1]) else 0.0))
        else:
            ranked = sorted(members, key=lambda s: (math.isnan(s[1]), s[1] if not math.isnan(s[1]) else 0.0))
        out.extend(ranked[:k])
    return out
