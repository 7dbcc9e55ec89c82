"""Binary operators: arithmetic, comparisons, set operators and vector matching."""

import math

import pytest

from opsplane.metrics.promql import PromQLError, instant
from tests.metrics.promql.factories import ls, query, scalar, series, source


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("1 + 2 * 3", 7.0),
        ("2 ^ 3 ^ 2", 512.0),
        ("7 % 3", 1.0),
        ("-7 % 3", -1.0),
        ("1 / 0", math.inf),
        ("-1 / 0", -math.inf),
        ("2 > bool 1", 1.0),
        ("2 < bool 1", 0.0),
        ("(1 + 1) == bool 2", 1.0),
        ("-(2 - 5)", 3.0),
    ],
)
def test_scalar_arithmetic_and_comparison(expr: str, expected: float) -> None:
    assert scalar(instant(expr, source(), 0)) == expected


@pytest.mark.parametrize("expr", ["0 / 0", "5 % 0", "(-8) ^ 0.5"])
def test_undefined_scalar_results_are_nan(expr: str) -> None:
    assert math.isnan(scalar(instant(expr, source(), 0)))


def gauges():
    return source(
        series("g", [(0, 5.0)], job="api"),
        series("g", [(0, 15.0)], job="web"),
    )


def test_vector_scalar_arithmetic_drops_the_name() -> None:
    assert query("g * 2", gauges(), 0) == {ls(job="api"): 10.0, ls(job="web"): 30.0}
    assert query("100 - g", gauges(), 0) == {ls(job="api"): 95.0, ls(job="web"): 85.0}


def test_vector_scalar_comparison_filters_and_keeps_vector_values() -> None:
    assert query("g > 10", gauges(), 0) == {ls(name="g", job="web"): 15.0}
    assert query("10 < g", gauges(), 0) == {ls(name="g", job="web"): 15.0}
    assert query("g > bool 10", gauges(), 0) == {ls(job="api"): 0.0, ls(job="web"): 1.0}


def errors_and_requests():
    return source(
        series("errors_total", [(0, 2.0)], job="api", instance="a", code="500"),
        series("errors_total", [(0, 3.0)], job="api", instance="b", code="500"),
        series("requests_total", [(0, 100.0)], job="api", instance="a"),
        series("requests_total", [(0, 50.0)], job="api", instance="b"),
        series("requests_total", [(0, 10.0)], job="api", instance="c"),
        series("team_info", [(0, 1.0)], job="api", team="checkout"),
    )


def test_one_to_one_matching_ignoring_a_label_drops_it() -> None:
    assert query("errors_total / ignoring (code) requests_total", errors_and_requests(), 0) == {
        ls(job="api", instance="a"): 0.02,
        ls(job="api", instance="b"): 0.06,
    }


def test_one_to_one_matching_on_keeps_only_those_labels() -> None:
    assert query("errors_total / on (instance) requests_total", errors_and_requests(), 0) == {
        ls(instance="a"): 0.02,
        ls(instance="b"): 0.06,
    }


def test_unmatched_label_sets_give_no_result() -> None:
    assert query("errors_total / requests_total", errors_and_requests(), 0) == {}


def test_group_left_copies_labels_from_the_one_side() -> None:
    result = query("requests_total * on (job) group_left (team) team_info", errors_and_requests(), 0)
    assert result == {
        ls(job="api", instance="a", team="checkout"): 100.0,
        ls(job="api", instance="b", team="checkout"): 50.0,
        ls(job="api", instance="c", team="checkout"): 10.0,
    }


def test_group_right_keeps_the_right_hand_labels() -> None:
    result = query("team_info * on (job) group_right (team) requests_total", errors_and_requests(), 0)
    assert set(result) == {
        ls(job="api", instance="a", team="checkout"),
        ls(job="api", instance="b", team="checkout"),
        ls(job="api", instance="c", team="checkout"),
    }
    assert result[ls(job="api", instance="c", team="checkout")] == 10.0


def test_group_right_comparison_keeps_the_left_value() -> None:
    result = query("team_info < on (job) group_right requests_total", errors_and_requests(), 0)
    assert result == {
        ls(name="requests_total", job="api", instance="a"): 1.0,
        ls(name="requests_total", job="api", instance="b"): 1.0,
        ls(name="requests_total", job="api", instance="c"): 1.0,
    }


def test_duplicate_series_on_the_one_side_is_a_many_to_many_error() -> None:
    with pytest.raises(PromQLError) as caught:
        instant("team_info / on (job) requests_total", errors_and_requests(), 0)
    assert "found duplicate series for the match group" in str(caught.value)
    assert "right hand-side" in str(caught.value)
    assert caught.value.construct == "many-to-many matching"


def test_many_to_one_without_group_left_is_an_error() -> None:
    with pytest.raises(PromQLError, match="many-to-one matching must be explicit"):
        instant("requests_total / on (job) team_info", errors_and_requests(), 0)


def test_group_left_whose_results_collide_is_an_error() -> None:
    src = source(
        series("a", [(0, 1.0)], job="api"),
        series("b", [(0, 2.0)], job="api"),
        series("c", [(0, 3.0)], job="api"),
    )
    with pytest.raises(PromQLError, match="grouping labels must ensure unique matches"):
        instant('{__name__=~"a|b"} * on (job) group_left c', src, 0)


def test_vector_comparisons_filter_or_return_bool() -> None:
    src = source(
        series("used", [(0, 90.0)], disk="sda"),
        series("used", [(0, 10.0)], disk="sdb"),
        series("limit", [(0, 80.0)], disk="sda"),
        series("limit", [(0, 80.0)], disk="sdb"),
    )
    assert query("used > limit", src, 0) == {ls(name="used", disk="sda"): 90.0}
    assert query("used > bool limit", src, 0) == {ls(disk="sda"): 1.0, ls(disk="sdb"): 0.0}


def sets():
    return source(
        series("a", [(0, 1.0)], job="x"),
        series("a", [(0, 2.0)], job="y"),
        series("b", [(0, 10.0)], job="y"),
        series("b", [(0, 20.0)], job="z"),
    )


def test_and_or_unless() -> None:
    assert query("a and b", sets(), 0) == {ls(name="a", job="y"): 2.0}
    assert query("a unless b", sets(), 0) == {ls(name="a", job="x"): 1.0}
    assert query("a or b", sets(), 0) == {
        ls(name="a", job="x"): 1.0,
        ls(name="a", job="y"): 2.0,
        ls(name="b", job="z"): 20.0,
    }
    assert query("a and on () b", sets(), 0) == {ls(name="a", job="x"): 1.0, ls(name="a", job="y"): 2.0}
    assert query("a unless ignoring (job) b", sets(), 0) == {}


def test_error_ratio_alert_expression() -> None:
    src = source(
        series("http_requests_total", [(0, 0.0), (30, 300.0), (60, 600.0)], job="api", code="200"),
        series("http_requests_total", [(0, 0.0), (30, 6.0), (60, 12.0)], job="api", code="500"),
    )
    # (0, 60] holds the samples at 30 s and 60 s; both rates are extrapolated alike (to zero).
    expr = (
        'sum by (job) (rate(http_requests_total{code=~"5.."}[1m]))'
        " / sum by (job) (rate(http_requests_total[1m])) > 0.01"
    )
    assert query(expr, src, 60) == {ls(job="api"): pytest.approx(12 / 612)}


def test_matching_against_an_empty_side_is_empty_not_an_error() -> None:
    assert query("team_info / on (job) nothing", errors_and_requests(), 0) == {}
