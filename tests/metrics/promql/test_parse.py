"""Parsing accepts the supported subset and refuses the rest by naming the construct."""

import pytest

from opsplane.errors import OpsplaneError
from opsplane.metrics.promql import Matcher, PromQLError, parse
from opsplane.metrics.promql.syntax import Aggregate, Binary, Call, MatrixSelector, VectorSelector


def test_selector_carries_name_matchers_and_offset() -> None:
    tree = parse('http_requests_total{code=~"5..", job!="batch"} offset 5m')
    assert isinstance(tree, VectorSelector)
    assert tree.offset == 300.0
    assert [(m.name, m.op, m.value) for m in tree.matchers] == [
        ("__name__", "=", "http_requests_total"),
        ("code", "=~", "5.."),
        ("job", "!=", "batch"),
    ]


def test_range_selector_and_call() -> None:
    tree = parse("rate(x[5m] offset -1m)")
    assert isinstance(tree, Call) and tree.name == "rate"
    arg = tree.args[0]
    assert isinstance(arg, MatrixSelector)
    assert arg.range == 300.0 and arg.selector.offset == -60.0


def test_vector_matching_modifiers_are_kept() -> None:
    tree = parse("a * on (instance) group_left (team) b")
    assert isinstance(tree, Binary)
    assert (tree.on, tree.matching, tree.card, tree.include) == (
        True,
        ("instance",),
        "many-to-one",
        ("team",),
    )
    tree = parse("a > bool ignoring (code) group_right b")
    assert isinstance(tree, Binary)
    assert (tree.on, tree.matching, tree.card, tree.return_bool) == (False, ("code",), "one-to-many", True)


def test_aggregation_grouping() -> None:
    tree = parse("sum without (instance) (x)")
    assert isinstance(tree, Aggregate)
    assert (tree.op, tree.labels, tree.without) == ("sum", ("instance",), True)


@pytest.mark.parametrize(
    ("expr", "construct", "wording"),
    [
        ("timestamp(x)", "timestamp", "unsupported function 'timestamp'"),
        ("nosuch(x)", "nosuch", "unknown function 'nosuch'"),
        ("max_over_time(rate(x[1m])[5m:1m])", "subquery", "subqueries are not supported"),
        ("x @ 1700000000", "@ modifier", "@ modifier is not supported"),
        ('count_values("v", x)', "count_values", "unsupported aggregation 'count_values'"),
        ("label_replace(x, 'a', 'b', 'c', 'd')", "label_replace", "unsupported function 'label_replace'"),
        ("rate(x", "syntax", "unclosed left parenthesis"),
        ("sum by (job (x)", "syntax", "syntax error"),
    ],
)
def test_refused_constructs_are_named(expr: str, construct: str, wording: str) -> None:
    with pytest.raises(PromQLError) as caught:
        parse(expr)
    assert caught.value.construct == construct
    assert wording in str(caught.value)


def test_promql_error_is_an_opsplane_usage_error() -> None:
    with pytest.raises(OpsplaneError) as caught:
        parse("nope(")
    assert caught.value.exit_code == 3


def test_regex_matchers_are_fully_anchored() -> None:
    matcher = Matcher("job", "=~", "api|web")
    assert matcher.matches("api") and matcher.matches("web")
    assert not matcher.matches("api-gateway") and not matcher.matches("my-web")
    negated = Matcher("job", "!~", "ap")
    assert negated.matches("api") and not negated.matches("ap")


def test_missing_label_matches_as_empty_string() -> None:
    assert Matcher("code", "=", "").matches("")
    assert not Matcher("code", "!=", "").matches("")
    assert Matcher("code", "=~", "2..|").matches("")


def test_invalid_regex_is_reported() -> None:
    with pytest.raises(PromQLError) as caught:
        parse('x{job=~"("}')
    assert "job" in str(caught.value)


@pytest.mark.parametrize(
    ("expr", "position"),
    [
        ("sum(rate(x[5m])) + timestamp(y)", 19),
        ("1 + nosuch(y)", 4),
        ("max_over_time(x[5m:1m])", 15),
        ("x @ 100", 2),
        ('count_values("v", x)', 0),
    ],
)
def test_refused_construct_position_is_reported(expr: str, position: int) -> None:
    with pytest.raises(PromQLError) as caught:
        parse(expr)
    assert caught.value.position == position


@pytest.mark.parametrize("expr", [
    "(" * 200 + "up" + ")" * 200,
    "abs(" * 200 + "up" + ")" * 200,
    " + ".join(["up"] * 200),  # a chain is a tree as deep as it is long
    "-" * 200 + "up",
    "(" * 30_000 + "up" + ")" * 30_000,  # the parser itself would overflow its stack here
])
def test_an_expression_nested_too_deep_is_refused_before_it_is_parsed(expr: str) -> None:
    with pytest.raises(PromQLError) as refused:
        parse(expr)
    assert refused.value.construct == "nesting"
    assert "nested more than 128 deep" in str(refused.value)


def test_strings_matchers_and_comments_do_not_count_as_nesting() -> None:
    parse('x{a!="' + "(-" * 200 + '", b="}"} # ' + "(" * 200 + "\n + 1")
    parse('sum by (service) (rate(x{code!="500",code=~"5.."}[5m])) / ' * 20 + "1")
