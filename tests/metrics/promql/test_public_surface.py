"""The names other parts of opsplane import from the PromQL engine."""

import math

import opsplane.metrics.promql as promql


def test_public_surface_is_what_callers_use() -> None:
    assert set(promql.__all__) == {
        "DEFAULT_LOOKBACK",
        "STALE_NAN",
        "Expr",
        "InstantEvaluation",
        "InstantVector",
        "Labels",
        "Matcher",
        "Matrix",
        "MemorySource",
        "PromQLError",
        "Sample",
        "SampleColumns",
        "Scalar",
        "SeriesSource",
        "StringValue",
        "Value",
        "instant",
        "is_stale",
        "labels_of",
        "parse",
        "range_query",
        "same_float",
    }
    assert all(hasattr(promql, name) for name in promql.__all__)
    assert promql.DEFAULT_LOOKBACK == 300.0


def test_memory_source_cuts_samples_to_the_requested_window() -> None:
    src = promql.MemorySource([({"__name__": "x", "job": "a"}, [(30, 3.0), (10, 1.0), (20, 2.0)])])
    selected = list(src.select([promql.Matcher("job", "=", "a")], 10, 20))
    assert selected == [((("__name__", "x"), ("job", "a")), [(10, 1.0), (20, 2.0)])]
    assert list(src.select([promql.Matcher("job", "=", "b")], 0, 100)) == []


def test_sample_columns_read_as_pairs() -> None:
    columns = promql.SampleColumns([1.0, 2.0, 3.0], [10.0, 20.0, 30.0])
    assert len(columns) == 3 and columns[1] == (2.0, 20.0)
    assert list(columns[1:]) == [(2.0, 20.0), (3.0, 30.0)]
    assert columns == [(1.0, 10.0), (2.0, 20.0), (3.0, 30.0)]


def test_a_source_returning_plain_pairs_works_too() -> None:
    class PairSource:
        def select(self, matchers, start, end):  # type: ignore[no-untyped-def]
            return [((("__name__", "x"),), [(0.0, 1.0), (60.0, 3.0)])]

    result = promql.instant("increase(x[2m])", PairSource(), 60)
    assert isinstance(result, promql.InstantVector)
    # 2 over 60 s; the range start is 60 s away but the counter was zero 30 s before: 2 * 90 / 60.
    assert result.samples == [((), 3.0)]


def test_same_float_compares_results_as_prometheus_answers_are_compared() -> None:
    assert promql.same_float(1.0, 1.0 + 1e-12)
    assert not promql.same_float(1.0, 1.0 + 1e-6)
    assert promql.same_float(math.nan, math.nan) and not promql.same_float(math.nan, 0.0)
    assert promql.same_float(math.inf, math.inf) and not promql.same_float(math.inf, -math.inf)
    assert promql.same_float(0.0, 0.0) and not promql.same_float(0.0, 1e-300)
