"""changes, resets, deriv and predict_linear."""

import pytest

from tests.metrics.promql.factories import ls, query, regular, series, source


def test_changes_and_resets_count_movements_in_the_range() -> None:
    src = source(series("g", regular(0, 10, [1, 1, 2, 2, 3, 1]), job="api"))
    assert query("changes(g[1m])", src, 50) == {ls(job="api"): 3.0}
    assert query("resets(g[1m])", src, 50) == {ls(job="api"): 1.0}


def test_deriv_is_the_least_squares_slope() -> None:
    src = source(series("g", regular(0, 10, [1, 3, 2, 6])))
    # x = 0, 10, 20, 30 (mean 15), y mean 3: covariance 70 over variance 500.
    assert query("deriv(g[1m])", src, 30) == {ls(): pytest.approx(0.14)}


def test_predict_linear_extends_the_fitted_line_from_the_evaluation_time() -> None:
    src = source(series("g", regular(0, 10, [0, 10, 20, 30])))
    assert query("predict_linear(g[1m], 60)", src, 30) == {ls(): pytest.approx(90.0)}
    assert query("predict_linear(g[1m], 60)", src, 40) == {ls(): pytest.approx(100.0)}


def test_disk_that_fills_within_four_hours_is_predicted() -> None:
    # 1 GB free less every 10 minutes, 20 GB free now: empty in 200 minutes.
    free = [30e9 - 1e9 * i for i in range(11)]
    src = source(series("node_filesystem_free_bytes", regular(0, 600, free), mountpoint="/"))
    result = query("predict_linear(node_filesystem_free_bytes[1h], 4 * 3600) < 0", src, 6000)
    assert result == {ls(mountpoint="/"): pytest.approx(20e9 - 24e9)}


def test_constant_series_has_no_slope() -> None:
    src = source(series("g", regular(0, 10, [5, 5, 5])))
    assert query("deriv(g[1m])", src, 20) == {ls(): 0.0}
    assert query("predict_linear(g[1m], 600)", src, 20) == {ls(): 5.0}
    assert query("deriv(g[5s])", src, 20) == {}
