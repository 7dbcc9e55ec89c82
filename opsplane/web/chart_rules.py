"""Which of a service's charts an alert rule watches, and at what threshold.

A rule's threshold is read from its expression, so the built-in pack (whose expressions carry
`alerting.builtin_rules.thresholds`) and a team's own rules are treated alike. The rule must
compare something with a number at its top (`X > 0.01`, `0.5 < X`, `1 - X < 0.995`), and X
must be one of the quantities the service page charts:

- **errors**: a ratio of `http_requests_total` with a 5xx status (`status`, `code` or
  `status_code` matching "500") over all of it;
- **latency**: `histogram_quantile` over a `*_seconds_bucket` histogram;
- **requests**: any other rate of `http_requests_total`.

`1 - X` compared with v is X compared with 1 - v (a success ratio is an error ratio turned
around). Anything else (a comparison with another expression, as RequestRateDrop has, or a
quantity the page does not chart) has no line to draw.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from opsplane.metrics.promql.model import METRIC_NAME, PromQLError
from opsplane.metrics.promql.syntax import (
    Aggregate,
    Binary,
    Call,
    Expr,
    MatrixSelector,
    Negation,
    NumberLiteral,
    VectorSelector,
    parse,
)
from opsplane.metrics.scrape import REQUESTS, STATUS_LABELS

_FLIPPED = {">": "<", "<": ">", ">=": "<=", "<=": ">="}


@dataclass(frozen=True)
class RuleThreshold:
    """The chart a rule watches ("errors", "requests" or "latency"), the value it compares
    with in that chart's unit, and the comparison, read with the charted value on the left."""

    chart: str
    value: float
    op: str


def rule_threshold(expr: str) -> RuleThreshold | None:
    """What `expr` compares on which chart; None when it draws as no line on any."""
    try:
        tree = parse(expr)
    except PromQLError:
        return None
    if not isinstance(tree, Binary) or tree.op not in _FLIPPED or tree.return_bool:
        return None
    if isinstance(tree.rhs, NumberLiteral):
        quantity, value, op = tree.lhs, tree.rhs.value, tree.op
    elif isinstance(tree.lhs, NumberLiteral):
        quantity, value, op = tree.rhs, tree.lhs.value, _FLIPPED[tree.op]
    else:
        return None
    if (isinstance(quantity, Binary) and quantity.op == "-" and isinstance(quantity.lhs, NumberLiteral)
            and quantity.lhs.value == 1):
        quantity, value, op = quantity.rhs, round(1 - value, 12), _FLIPPED[op]
    chart = _chart(quantity)
    return None if chart is None else RuleThreshold(chart, value, op)


def _chart(quantity: Expr) -> str | None:
    if any(isinstance(node, Call) and node.name == "histogram_quantile" for node in _walk(quantity)):
        names = {_name(s) for s in _selectors(quantity)}
        return "latency" if any(n and n.endswith("_seconds_bucket") for n in names) else None
    selectors = list(_selectors(quantity))
    if not selectors or any(_name(s) != REQUESTS for s in selectors):
        return None
    if isinstance(quantity, Binary) and quantity.op == "/":
        errors = [_is_5xx(s) for s in _selectors(quantity.lhs)]
        whole = [_is_5xx(s) for s in _selectors(quantity.rhs)]
        if errors and all(errors) and not any(whole):
            return "errors"
        return None
    return None if any(_is_5xx(s) for s in selectors) else "requests"


def _is_5xx(selector: VectorSelector) -> bool:
    return any(m.name in STATUS_LABELS and m.matches("500") and not m.matches("200")
               for m in selector.matchers)


def _name(selector: VectorSelector) -> str | None:
    return next((m.value for m in selector.matchers if m.name == METRIC_NAME and m.op == "="), None)


def _selectors(expr: Expr) -> Iterator[VectorSelector]:
    for node in _walk(expr):
        if isinstance(node, VectorSelector):
            yield node


def _walk(expr: Expr) -> Iterator[Expr]:
    yield expr
    if isinstance(expr, MatrixSelector):
        yield from _walk(expr.selector)
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from _walk(arg)
    elif isinstance(expr, Aggregate):
        yield from _walk(expr.expr)
        if expr.param is not None:
            yield from _walk(expr.param)
    elif isinstance(expr, Negation):
        yield from _walk(expr.expr)
    elif isinstance(expr, Binary):
        yield from _walk(expr.lhs)
        yield from _walk(expr.rhs)
