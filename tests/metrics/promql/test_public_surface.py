"""The names other parts of opsplane import from the PromQL engine."""

import opsplane.metrics.promql as promql


def test_public_surface_is_what_callers_use() -> None:
    assert set(promql.__all__) == {
        "DEFAULT_LOOKBACK",
        "STALE_NAN",
        "Expr",
        "InstantVector",
        "Labels",
        "Matcher",
        "Matrix",
        "MemorySource",
        "PromQLError",
        "Sample",
        "Scalar",
        "SeriesSource",
        "StringValue",
        "Value",
        "instant",
        "is_stale",
        "labels_of",
        "parse",
        "range_query",
    }
    assert all(hasattr(promql, name) for name in promql.__all__)
    assert promql.DEFAULT_LOOKBACK == 300.0


def test_memory_source_cuts_samples_to_the_requested_window() -> None:
    src = promql.MemorySource([({"__name__": "x", "job": "a"}, [(30, 3.0), (10, 1.0), (20, 2.0)])])
    selected = list(src.select([promql.Matcher("job", "=", "a")], 10, 20))
    assert selected == [((("__name__", "x"), ("job", "a")), [(10, 1.0), (20, 2.0)])]
    assert list(src.select([promql.Matcher("job", "=", "b")], 0, 100)) == []
