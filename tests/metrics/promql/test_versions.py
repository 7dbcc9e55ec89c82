"""Following Prometheus 2's rules where they differ from Prometheus 3's (the default)."""

import pytest

from opsplane.metrics.promql import PromQLError, instant
from tests.metrics.promql.factories import by_labels, ls, matrix, query, regular, series, source


def test_prometheus_2_lookback_includes_a_sample_on_the_lower_edge() -> None:
    src = source(series("x", [(100, 7.0)]))
    assert query("x", src, 400) == {}
    assert by_labels(instant("x", src, 400, prometheus=2)) == {ls(name="x"): 7.0}
    assert by_labels(instant("x", src, 400.5, prometheus=2)) == {}


def test_prometheus_2_range_includes_a_sample_on_the_lower_edge() -> None:
    src = source(series("x", regular(0, 15, [0, 1, 2, 3, 4])))
    assert [t for t, _ in matrix(instant("x[1m]", src, 60))[ls(name="x")]] == [15.0, 30.0, 45.0, 60.0]
    two = matrix(instant("x[1m]", src, 60, prometheus=2))
    assert [t for t, _ in two[ls(name="x")]] == [0.0, 15.0, 30.0, 45.0, 60.0]


def test_zero_point_is_applied_before_the_threshold_in_prometheus_2() -> None:
    src = source(series("c", regular(200, 30, [20, 50, 80, 110])))
    # change 90 over 90 s, 200 s after the range start, 10 s before its end; the counter was
    # zero 20 s before its first sample. Prometheus 3 extrapolates half an interval (15 s) and
    # keeps it since it is shorter than 20 s; Prometheus 2 takes the 20 s because it is below
    # the 33 s threshold.
    assert query("increase(c[5m])", src, 300) == {ls(): pytest.approx(115.0)}
    assert by_labels(instant("increase(c[5m])", src, 300, prometheus=2)) == {ls(): pytest.approx(120.0)}


def test_unknown_version_is_refused() -> None:
    with pytest.raises(PromQLError, match="Prometheus 4"):
        instant("x", source(), 0, prometheus=4)
