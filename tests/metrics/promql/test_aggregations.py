"""Aggregations with by and without."""

import math

import pytest

from tests.metrics.promql.factories import ls, query, series, source


def requests():
    return source(
        series("http_requests_total", [(0, 10.0)], job="api", instance="a", code="200"),
        series("http_requests_total", [(0, 20.0)], job="api", instance="b", code="200"),
        series("http_requests_total", [(0, 1.0)], job="api", instance="a", code="500"),
        series("http_requests_total", [(0, 5.0)], job="web", instance="c", code="200"),
    )


def test_sum_by_keeps_only_the_listed_labels() -> None:
    assert query("sum by (job) (http_requests_total)", requests(), 0) == {
        ls(job="api"): 31.0,
        ls(job="web"): 5.0,
    }


def test_sum_without_drops_the_listed_labels_and_the_name() -> None:
    assert query("sum without (instance) (http_requests_total)", requests(), 0) == {
        ls(job="api", code="200"): 30.0,
        ls(job="api", code="500"): 1.0,
        ls(job="web", code="200"): 5.0,
    }


def test_aggregation_without_grouping_yields_one_unlabelled_sample() -> None:
    assert query("sum(http_requests_total)", requests(), 0) == {ls(): 36.0}
    assert query("sum(nothing)", requests(), 0) == {}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("avg by (job) (http_requests_total)", {ls(job="api"): 31 / 3, ls(job="web"): 5.0}),
        ("min by (job) (http_requests_total)", {ls(job="api"): 1.0, ls(job="web"): 5.0}),
        ("max by (job) (http_requests_total)", {ls(job="api"): 20.0, ls(job="web"): 5.0}),
        ("count by (code) (http_requests_total)", {ls(code="200"): 3.0, ls(code="500"): 1.0}),
        ("group by (code) (http_requests_total)", {ls(code="200"): 1.0, ls(code="500"): 1.0}),
        ("quantile(0.5, http_requests_total)", {ls(): 7.5}),
        ("stdvar(http_requests_total)", {ls(): 50.5}),
        ("stddev(http_requests_total)", {ls(): math.sqrt(50.5)}),
    ],
)
def test_aggregation_values(expr: str, expected: dict) -> None:
    assert query(expr, requests(), 0) == pytest.approx(expected)


def test_topk_and_bottomk_keep_the_original_series() -> None:
    assert query("topk(2, http_requests_total)", requests(), 0) == {
        ls(name="http_requests_total", job="api", instance="b", code="200"): 20.0,
        ls(name="http_requests_total", job="api", instance="a", code="200"): 10.0,
    }
    assert query("topk by (job) (1, http_requests_total)", requests(), 0) == {
        ls(name="http_requests_total", job="api", instance="b", code="200"): 20.0,
        ls(name="http_requests_total", job="web", instance="c", code="200"): 5.0,
    }
    assert query("bottomk(1, http_requests_total)", requests(), 0) == {
        ls(name="http_requests_total", job="api", instance="a", code="500"): 1.0,
    }
    assert query("topk(0, http_requests_total)", requests(), 0) == {}


def test_topk_ranks_nan_last_and_max_ignores_it() -> None:
    src = source(series("g", [(0, math.nan)], i="1"), series("g", [(0, 3.0)], i="2"))
    assert query("topk(1, g)", src, 0) == {ls(name="g", i="2"): 3.0}
    assert query("bottomk(1, g)", src, 0) == {ls(name="g", i="2"): 3.0}
    assert query("max(g)", src, 0) == {ls(): 3.0}
    assert query("min(g)", src, 0) == {ls(): 3.0}
    assert math.isnan(query("sum(g)", src, 0)[ls()])


def test_sum_by_name_keeps_the_name() -> None:
    assert query("sum by (__name__) (http_requests_total)", requests(), 0) == {
        ls(name="http_requests_total"): 36.0
    }
