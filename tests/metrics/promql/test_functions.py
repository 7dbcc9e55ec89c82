"""*_over_time, histogram_quantile, absent, clamp, abs, time, vector and scalar."""

import math

import pytest

from opsplane.metrics.promql import PromQLError, instant
from tests.metrics.promql.factories import ls, query, regular, scalar, series, source


def gauge():
    return source(series("g", [(10, 1.0), (20, 4.0), (30, 2.0), (40, 9.0)], job="api"))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("avg_over_time(g[1m])", 4.0),
        ("min_over_time(g[1m])", 1.0),
        ("max_over_time(g[1m])", 9.0),
        ("sum_over_time(g[1m])", 16.0),
        ("count_over_time(g[1m])", 4.0),
        ("stdvar_over_time(g[1m])", 9.5),
        ("stddev_over_time(g[1m])", math.sqrt(9.5)),
        ("quantile_over_time(0.5, g[1m])", 3.0),
        ("quantile_over_time(0.9, g[1m])", 7.5),
        ("quantile_over_time(-1, g[1m])", -math.inf),
        ("quantile_over_time(2, g[1m])", math.inf),
        ("present_over_time(g[1m])", 1.0),
        ("max_over_time(g[15s])", 9.0),
    ],
)
def test_over_time_functions_drop_the_name(expr: str, expected: float) -> None:
    assert query(expr, gauge(), 40) == {ls(job="api"): pytest.approx(expected)}


def test_last_over_time_keeps_the_name() -> None:
    assert query("last_over_time(g[1m])", gauge(), 45) == {ls(name="g", job="api"): 9.0}


def test_min_and_max_over_time_skip_nan() -> None:
    src = source(series("g", [(0, math.nan), (10, 3.0), (20, math.nan)]))
    assert query("max_over_time(g[1m])", src, 20) == {ls(): 3.0}
    assert query("min_over_time(g[1m])", src, 20) == {ls(): 3.0}
    assert math.isnan(query("avg_over_time(g[1m])", src, 20)[ls()])


def buckets(**more: str):
    counts = {"0.1": 10.0, "0.5": 30.0, "1": 40.0, "+Inf": 40.0}
    return [series("latency_bucket", [(0, c)], le=le, **more) for le, c in counts.items()]


@pytest.mark.parametrize(("q", "expected"), [(0.5, 0.3), (0.95, 0.9), (1.0, 1.0), (0.1, 0.04)])
def test_histogram_quantile_interpolates_inside_the_bucket(q: float, expected: float) -> None:
    src = source(*buckets(job="api"))
    assert query(f"histogram_quantile({q}, latency_bucket)", src, 0) == {
        ls(job="api"): pytest.approx(expected)
    }


def test_histogram_quantile_groups_by_labels_other_than_le() -> None:
    src = source(*buckets(job="api"), *buckets(job="web"))
    assert set(query("histogram_quantile(0.5, latency_bucket)", src, 0)) == {ls(job="api"), ls(job="web")}


def test_histogram_quantile_in_the_inf_bucket_returns_the_highest_finite_bound() -> None:
    src = source(series("h", [(0, 10.0)], le="0.1"), series("h", [(0, 20.0)], le="+Inf"))
    assert query("histogram_quantile(0.9, h)", src, 0) == {ls(): 0.1}


def test_histogram_quantile_without_inf_bucket_is_nan() -> None:
    src = source(series("h", [(0, 10.0)], le="0.1"), series("h", [(0, 20.0)], le="1"))
    assert math.isnan(query("histogram_quantile(0.5, h)", src, 0)[ls()])


def test_histogram_quantile_forces_counts_to_be_monotonic() -> None:
    counts = {"0.1": 10.0, "0.5": 8.0, "1": 20.0, "+Inf": 20.0}
    src = source(*[series("h", [(0, c)], le=le) for le, c in counts.items()])
    # Fixed counts 10, 10, 20, 20: rank 15 lies in (0.5, 1] with 10 observations, 5 of them below.
    assert query("histogram_quantile(0.75, h)", src, 0) == {ls(): pytest.approx(0.75)}


def test_histogram_quantile_edges() -> None:
    src = source(*buckets())
    assert query("histogram_quantile(-0.5, latency_bucket)", src, 0) == {ls(): -math.inf}
    assert query("histogram_quantile(1.5, latency_bucket)", src, 0) == {ls(): math.inf}
    zero = source(
        series("h", [(0, 5.0)], le="0"), series("h", [(0, 10.0)], le="1"), series("h", [(0, 10.0)], le="+Inf")
    )
    assert query("histogram_quantile(0.2, h)", zero, 0) == {ls(): 0.0}
    empty = source(series("h", [(0, 0.0)], le="1"), series("h", [(0, 0.0)], le="+Inf"))
    assert math.isnan(query("histogram_quantile(0.5, h)", empty, 0)[ls()])


def test_histogram_quantile_of_rates() -> None:
    src = source(
        series("h_bucket", regular(0, 60, [0, 60]), le="0.25"),
        series("h_bucket", regular(0, 60, [0, 120]), le="+Inf"),
    )
    # Rates 0.5/s and 1/s (no extrapolation below zero); the median is the top of the first bucket.
    result = query("histogram_quantile(0.5, rate(h_bucket[2m]))", src, 60)
    assert result == {ls(): pytest.approx(0.25)}


def test_absent_reports_equality_matchers_as_labels() -> None:
    src = source(series("up", [(0, 1.0)], job="api"))
    assert query('absent(up{job="api"})', src, 0) == {}
    assert query('absent(nope{job="api", env=~"prod.*"})', src, 0) == {ls(job="api"): 1.0}
    assert query('absent(nope{job="a", job="b"})', src, 0) == {ls(): 1.0}
    assert query("absent(sum(nope))", src, 0) == {ls(): 1.0}
    assert query('absent_over_time(nope{job="x"}[5m])', src, 0) == {ls(job="x"): 1.0}
    assert query('absent_over_time(up{job="api"}[5m])', src, 0) == {}


def test_clamp_family() -> None:
    src = source(*[series("g", [(0, v)], i=str(i)) for i, v in enumerate([-5.0, 3.0, 20.0])])
    assert query("clamp(g, 0, 10)", src, 0) == {ls(i="0"): 0.0, ls(i="1"): 3.0, ls(i="2"): 10.0}
    assert query("clamp_min(g, 0)", src, 0) == {ls(i="0"): 0.0, ls(i="1"): 3.0, ls(i="2"): 20.0}
    assert query("clamp_max(g, 10)", src, 0) == {ls(i="0"): -5.0, ls(i="1"): 3.0, ls(i="2"): 10.0}
    assert query("clamp(g, 10, 0)", src, 0) == {}
    assert query("abs(g)", src, 0) == {ls(i="0"): 5.0, ls(i="1"): 3.0, ls(i="2"): 20.0}


def test_time_vector_and_scalar() -> None:
    src = source(
        series("one", [(0, 4.0)]), series("two", [(0, 1.0)], i="a"), series("two", [(0, 2.0)], i="b")
    )
    assert scalar(instant("time()", src, 1234.5)) == 1234.5
    assert query("vector(3)", src, 0) == {ls(): 3.0}
    assert query("vector(time())", src, 7) == {ls(): 7.0}
    assert scalar(instant("scalar(one)", src, 0)) == 4.0
    assert math.isnan(scalar(instant("scalar(two)", src, 0)))
    assert math.isnan(scalar(instant("scalar(nope)", src, 0)))


def test_functions_that_drop_names_refuse_equal_label_sets() -> None:
    src = source(series("a", [(0, 1.0)], job="x"), series("b", [(0, 2.0)], job="x"))
    with pytest.raises(PromQLError, match="same labelset"):
        instant('abs({__name__=~"a|b"})', src, 0)
    assert query('last_over_time({__name__=~"a|b"}[1m])', src, 0) == {
        ls(name="a", job="x"): 1.0,
        ls(name="b", job="x"): 2.0,
    }


def test_name_is_dropped_wherever_it_sorts() -> None:
    src = source(series("g", [(0, -2.0)], Zone="a", job="x"))
    assert query("abs(g)", src, 0) == {ls(Zone="a", job="x"): 2.0}
