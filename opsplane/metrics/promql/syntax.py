"""PromQL expressions as opsplane's own tree, built from the `promql-parser` package.

Parsing is delegated to `promql-parser` (the Rust parser Prometheus-compatible tools use);
this module converts its tree into small frozen dataclasses and refuses, by name, everything
the evaluator does not implement. A rule that passes `parse` therefore evaluates.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import promql_parser as pp

from opsplane.metrics.promql.model import METRIC_NAME, Matcher, PromQLError


@dataclass(frozen=True)
class NumberLiteral:
    value: float


@dataclass(frozen=True)
class StringLiteral:
    value: str


@dataclass(frozen=True)
class VectorSelector:
    """`name{matchers} offset d`: the newest sample of each series within the lookback."""

    matchers: tuple[Matcher, ...]
    offset: float = 0.0


@dataclass(frozen=True)
class MatrixSelector:
    """`selector[range]`: every sample of each series in (t - range, t]."""

    selector: VectorSelector
    range: float


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Aggregate:
    """`op by|without (labels) (param, expr)`; `without` False with no labels groups everything."""

    op: str
    expr: Expr
    param: Expr | None
    labels: tuple[str, ...]
    without: bool


@dataclass(frozen=True)
class Negation:
    expr: Expr


@dataclass(frozen=True)
class Binary:
    """A binary operation with Prometheus's vector matching.

    `on` is True for `on(...)`, False for `ignoring(...)` or no clause; `card` is one of
    "one-to-one", "many-to-one" (group_left), "one-to-many" (group_right), "many-to-many" (set ops).
    """

    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    on: bool = False
    matching: tuple[str, ...] = ()
    card: str = "one-to-one"
    include: tuple[str, ...] = ()


Expr = NumberLiteral | StringLiteral | VectorSelector | MatrixSelector | Call | Aggregate | Negation | Binary

SUPPORTED_FUNCTIONS = frozenset(
    {
        "rate", "irate", "increase", "delta", "idelta",
        "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time",
        "last_over_time", "stddev_over_time", "stdvar_over_time", "quantile_over_time",
        "present_over_time", "absent_over_time", "changes", "resets", "deriv", "predict_linear",
        "histogram_quantile", "absent", "clamp", "clamp_min", "clamp_max",
        "abs", "ceil", "floor", "sqrt", "exp", "ln", "log2", "log10",
        "time", "vector", "scalar",
    }
)  # fmt: skip

SUPPORTED_AGGREGATIONS = frozenset(
    {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile"}
)

BINARY_OPS = frozenset(
    {"+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless"}
)

# The parser's enums are not hashable, so they are looked up by their printed names.
_MATCH_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}

_CARDINALITY = {
    "VectorMatchCardinality.OneToOne": "one-to-one",
    "VectorMatchCardinality.ManyToOne": "many-to-one",
    "VectorMatchCardinality.OneToMany": "one-to-many",
    "VectorMatchCardinality.ManyToMany": "many-to-many",
}


# How deep an expression's tree may be. The parser recurses over the tree in native code
# (about 10,000 levels overflow its stack and end the process) and the evaluator in Python,
# up to five frames a level (a function's call), within Python's 1,000; rules nest a dozen
# levels at most.
MAX_DEPTH = 128
# What can make the tree one level deeper: an opening parenthesis (of a group, a call, an
# aggregation) and an operator. Strings, comments and what is inside braces (matchers: `!=`
# there compares a label, not two expressions) are read past.
_DEPTH_TOKENS = re.compile(r"""
    "(?:[^"\\]|\\.)*"? | '(?:[^'\\]|\\.)*'? | `[^`]*`? | \#[^\n]*
  | (?P<open>[({]) | (?P<close>[)}])
  | (?P<op>==|!=|>=|<=|[-+*/%^<>]|\b(?:and|or|unless|atan2)\b)
""", re.VERBOSE)


def _check_depth(text: str) -> None:
    """PromQLError when `text` may nest deeper than MAX_DEPTH. Measured on the text before
    parsing, as the deepest parentheses plus every operator: the tree cannot be deeper (a
    chain of 300 additions is a tree 300 deep), and the parser never sees what it cannot
    take."""
    parentheses = deepest = operators = 0
    in_braces = False
    for token in _DEPTH_TOKENS.finditer(text):
        if token.group("open"):
            if token.group() == "{":
                in_braces = True
            else:
                parentheses += 1
                deepest = max(deepest, parentheses)
        elif token.group("close"):
            if token.group() == "}":
                in_braces = False
            else:
                parentheses -= 1
        elif token.group("op") and not in_braces:
            operators += 1
        if deepest + operators > MAX_DEPTH:
            raise PromQLError(
                f"the expression is nested more than {MAX_DEPTH} deep (parentheses, calls and "
                f"operators together); split it into recording rules or simpler expressions",
                "nesting")


def parse(text: str) -> Expr:
    """The expression tree for `text`.

    Raises PromQLError for syntax errors and for constructs outside the supported subset,
    with `construct` naming what was refused.
    """
    _check_depth(text)
    try:
        tree = pp.parse(text)
    except ValueError as exc:
        unknown = re.fullmatch(r"unknown function with name '(\w+)'", str(exc))
        if unknown:
            name = unknown.group(1)
            raise PromQLError(f"unknown function '{name}' in {text!r}", name, _locate(text, name)) from exc
        raise PromQLError(f"syntax error in {text!r}: {exc}", "syntax") from exc
    try:
        return _convert(tree)
    except PromQLError as exc:
        if exc.position is None and exc.construct is not None:
            exc.position = _locate(text, exc.construct)
        raise


def _locate(text: str, construct: str) -> int | None:
    """Where in `text` a refused construct starts (a character offset), when it can be found."""
    if construct == "subquery":
        found = re.search(r"\[[^\]]*:", text)
    elif construct == "@ modifier":
        found = re.search("@", text)
    elif re.fullmatch(r"\w+", construct):
        found = re.search(rf"\b{construct}\b", text)
    else:
        found = None
    return found.start() if found else None


def _seconds(delta: timedelta | None) -> float:
    return 0.0 if delta is None else delta.total_seconds()


def _convert(node: object) -> Expr:
    converter: Callable[[Any], Expr] | None = _CONVERTERS.get(type(node))
    if converter is None:
        construct = type(node).__name__
        if isinstance(node, pp.SubqueryExpr):
            raise PromQLError("subqueries are not supported", "subquery")
        raise PromQLError(f"unsupported expression {construct}", construct)
    return converter(node)


def _selector(node: pp.VectorSelector) -> VectorSelector:
    if node.at is not None:
        raise PromQLError("the @ modifier is not supported", "@ modifier")
    if node.matchers.or_matchers:
        raise PromQLError("'or' inside label matchers is not supported", "or matchers")
    matchers = [Matcher(m.name, _MATCH_OPS[str(m.op)], m.value) for m in node.matchers.matchers]
    if node.name is not None:
        matchers.insert(0, Matcher(METRIC_NAME, "=", node.name))
    return VectorSelector(tuple(matchers), _seconds(node.offset))


def _matrix(node: pp.MatrixSelector) -> MatrixSelector:
    return MatrixSelector(_selector(node.vector_selector), _seconds(node.range))


def _call(node: pp.Call) -> Call:
    name = node.func.name
    if name not in SUPPORTED_FUNCTIONS:
        raise PromQLError(f"unsupported function '{name}'", name)
    return Call(name, tuple(_convert(arg) for arg in node.args))


def _aggregate(node: pp.AggregateExpr) -> Aggregate:
    op = str(node.op)
    if op not in SUPPORTED_AGGREGATIONS:
        raise PromQLError(f"unsupported aggregation '{op}'", op)
    labels: tuple[str, ...] = ()
    without = False
    if node.modifier is not None:
        labels = tuple(node.modifier.labels)
        without = node.modifier.type == pp.AggModifierType.Without
    param = _convert(node.param) if node.param is not None else None
    return Aggregate(op, _convert(node.expr), param, labels, without)


def _binary(node: pp.BinaryExpr) -> Binary:
    op = str(node.op)
    if op not in BINARY_OPS:
        raise PromQLError(f"unsupported binary operator '{op}'", op)
    lhs, rhs = _convert(node.lhs), _convert(node.rhs)
    modifier = node.modifier
    if modifier is None:
        card = "many-to-many" if op in ("and", "or", "unless") else "one-to-one"
        return Binary(op, lhs, rhs, card=card)
    fill = modifier.fill_values
    if fill is not None and (fill.lhs is not None or fill.rhs is not None):
        raise PromQLError("fill values in vector matching are not supported", "fill")
    on = modifier.matching is not None and modifier.matching.type == pp.LabelModifierType.Include
    matching = tuple(modifier.matching.labels) if modifier.matching is not None else ()
    return Binary(
        op,
        lhs,
        rhs,
        return_bool=modifier.return_bool,
        on=on,
        matching=matching,
        card=_CARDINALITY[str(modifier.card)],
        include=tuple(modifier.group_labels or ()),
    )


_CONVERTERS: dict[type, Callable[[Any], Expr]] = {
    pp.NumberLiteral: lambda node: NumberLiteral(float(node.val)),
    pp.StringLiteral: lambda node: StringLiteral(node.val),
    pp.VectorSelector: _selector,
    pp.MatrixSelector: _matrix,
    pp.Call: _call,
    pp.AggregateExpr: _aggregate,
    pp.BinaryExpr: _binary,
    pp.ParenExpr: lambda node: _convert(node.expr),
    pp.UnaryExpr: lambda node: Negation(_convert(node.expr)),
}
