"""Instant and range selectors: lookback, staleness, offsets, matchers and range queries."""

import math

import pytest

from opsplane.metrics.promql import STALE_NAN, Matrix, PromQLError, instant, is_stale, parse, range_query
from tests.metrics.promql.factories import by_labels, ls, matrix, query, regular, series, source


def gauges():
    return source(
        series("up", regular(0, 60, [1, 1, 1]), job="api", instance="a:1"),
        series("up", regular(0, 60, [0, 0, 0]), job="web", instance="b:1"),
        series("up", regular(0, 60, [1, 1, 1]), job="batch"),
    )


def test_newest_sample_within_lookback_is_returned() -> None:
    src = source(series("x", [(0, 1.0), (60, 2.0)]))
    assert query("x", src, 59) == {ls(name="x"): 1.0}
    assert query("x", src, 100) == {ls(name="x"): 2.0}


def test_lookback_window_is_open_on_the_left() -> None:
    src = source(series("x", [(100, 7.0)]))
    assert query("x", src, 399.5) == {ls(name="x"): 7.0}
    assert query("x", src, 400) == {}
    assert instant("x", src, 130, lookback=30.0).samples == []  # type: ignore[union-attr]
    assert query("x", src, 99) == {}


def test_stale_marker_hides_series_until_next_sample() -> None:
    src = source(series("x", [(0, 1.0), (15, STALE_NAN), (30, 5.0)]))
    assert query("x", src, 10) == {ls(name="x"): 1.0}
    assert query("x", src, 20) == {}
    assert query("x", src, 30) == {ls(name="x"): 5.0}


def test_ordinary_nan_is_a_value_not_staleness() -> None:
    src = source(series("x", [(0, math.nan)]))
    result = query("x", src, 10)
    assert math.isnan(result[ls(name="x")])
    assert is_stale(STALE_NAN) and not is_stale(math.nan)


def test_all_four_matcher_kinds() -> None:
    src = gauges()
    assert set(query('up{job="api"}', src, 120)) == {ls(name="up", job="api", instance="a:1")}
    assert set(query('up{job!="api"}', src, 120)) == {
        ls(name="up", job="web", instance="b:1"),
        ls(name="up", job="batch"),
    }
    assert set(query('up{job=~"a.*|w.b"}', src, 120)) == {
        ls(name="up", job="api", instance="a:1"),
        ls(name="up", job="web", instance="b:1"),
    }
    assert set(query('up{job!~"a.*|w.b"}', src, 120)) == {ls(name="up", job="batch")}
    assert set(query('up{instance=""}', src, 120)) == {ls(name="up", job="batch")}
    assert query('up{job=~"ap"}', src, 120) == {}


def test_name_matched_by_regex() -> None:
    src = source(series("a_total", [(0, 1.0)]), series("b_total", [(0, 2.0)]), series("c", [(0, 3.0)]))
    assert query('{__name__=~".*_total"}', src, 0) == {ls(name="a_total"): 1.0, ls(name="b_total"): 2.0}


def test_offset_moves_the_evaluation_time_back() -> None:
    src = source(series("x", regular(0, 60, [10, 20, 30])))
    assert query("x offset 1m", src, 120) == {ls(name="x"): 20.0}
    assert query("x offset -1m", src, 60) == {ls(name="x"): 30.0}


def test_range_selector_is_open_on_the_left() -> None:
    src = source(series("x", regular(0, 15, [0, 1, 2, 3, 4, 5])))
    result = matrix(instant("x[1m]", src, 60))
    assert result == {ls(name="x"): [(15.0, 1.0), (30.0, 2.0), (45.0, 3.0), (60.0, 4.0)]}


def test_range_selector_leaves_out_stale_markers_and_applies_offset() -> None:
    src = source(series("x", [(0, 1.0), (10, 2.0), (20, STALE_NAN), (30, 4.0)]))
    assert matrix(instant("x[1m]", src, 30)) == {ls(name="x"): [(0.0, 1.0), (10.0, 2.0), (30.0, 4.0)]}
    assert matrix(instant("x[15s] offset 10s", src, 30)) == {ls(name="x"): [(10.0, 2.0)]}


def test_range_query_steps_and_series_that_come_and_go() -> None:
    src = source(
        series("x", [(0, 1.0), (60, 2.0), (120, STALE_NAN)], job="a"),
        series("x", [(90, 5.0)], job="b"),
    )
    result = range_query("x", src, 0, 180, 60)
    assert isinstance(result, Matrix)
    assert matrix(result) == {
        ls(name="x", job="a"): [(0.0, 1.0), (60.0, 2.0)],
        ls(name="x", job="b"): [(120.0, 5.0), (180.0, 5.0)],
    }


def test_range_query_of_a_scalar_has_one_unlabelled_series() -> None:
    result = range_query("time() * 2", source(), 10, 30, 10)
    assert result.series == [((), [(10.0, 20.0), (20.0, 40.0), (30.0, 60.0)])]


def test_range_query_refuses_range_vectors_and_bad_steps() -> None:
    with pytest.raises(PromQLError, match="range vector"):
        range_query("x[5m]", source(), 0, 60, 15)
    with pytest.raises(PromQLError, match="step"):
        range_query("x", source(), 0, 60, 0)


def test_parsed_tree_can_be_evaluated_repeatedly() -> None:
    tree = parse("x")
    src = source(series("x", regular(0, 60, [1, 2])))
    assert by_labels(instant(tree, src, 0)) == {ls(name="x"): 1.0}
    assert by_labels(instant(tree, src, 60)) == {ls(name="x"): 2.0}


def test_range_query_with_too_many_steps_is_refused() -> None:
    with pytest.raises(PromQLError, match="11000"):
        range_query("time()", source(), 0, 86400, 1)


class CountingSource:
    """A MemorySource that records every select call."""

    def __init__(self, inner):  # type: ignore[no-untyped-def]
        self.inner = inner
        self.calls: list[tuple[float, float]] = []

    def select(self, matchers, start, end):  # type: ignore[no-untyped-def]
        self.calls.append((start, end))
        return self.inner.select(matchers, start, end)


def test_range_query_reads_each_selector_once_for_the_whole_window() -> None:
    src = CountingSource(source(series("x", regular(0, 15, range(100)), job="a")))
    result = range_query("rate(x[2m]) / rate(x[2m]) + x", src, 600, 1200, 60)
    assert len(result.series) == 1 and len(result.series[0][1]) == 11
    # one read for x[2m] (used twice) and one for x with its 5-minute lookback
    assert sorted(src.calls) == [(300.0, 1200.0), (480.0, 1200.0)]
