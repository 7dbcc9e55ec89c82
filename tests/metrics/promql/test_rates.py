"""rate, increase, delta, irate and idelta, with expectations worked out from Prometheus's rules.

Prometheus extrapolates the change between the first and last sample of the range to the range
edges when the samples come within 1.1 average intervals of them, by half an interval otherwise,
and never past a counter's zero point.
"""

import pytest

from tests.metrics.promql.factories import ls, query, regular, series, source


def steady_counter():
    return source(series("requests_total", regular(0, 15, range(0, 301, 15)), job="api"))


def test_rate_of_a_steady_counter_is_its_slope() -> None:
    # (0, 300] holds samples 15..300: change 285 over 285 s, extrapolated 15 s to the start.
    assert query("rate(requests_total[5m])", steady_counter(), 300) == {ls(job="api"): pytest.approx(1.0)}
    assert query("increase(requests_total[5m])", steady_counter(), 300) == {
        ls(job="api"): pytest.approx(300.0)
    }


def test_counter_reset_adds_the_value_before_the_reset() -> None:
    src = source(series("c", regular(0, 60, [10, 20, 5, 15, 25])))
    # (0, 240] holds 20, 5, 15, 25: change 5, plus 20 lost at the reset = 25 over 180 s,
    # extrapolated 60 s to the start (within 1.1 x 60 s): 25 * 240 / 180.
    assert query("increase(c[4m])", src, 240) == {ls(): pytest.approx(100 / 3)}
    assert query("rate(c[4m])", src, 240) == {ls(): pytest.approx(100 / 3 / 240)}


def test_series_starting_inside_the_range_is_extrapolated_by_half_an_interval() -> None:
    src = source(series("c", regular(200, 30, [100, 130, 160, 190])))
    # change 90 over 90 s; 200 s to the start is beyond 33 s, so only 15 s; 10 s to the end.
    assert query("increase(c[5m])", src, 300) == {ls(): pytest.approx(115.0)}


def test_counter_is_not_extrapolated_below_zero() -> None:
    src = source(series("c", regular(30, 30, [5, 35, 65])))
    # change 60 over 60 s; the counter was 0 five seconds before its first sample.
    assert query("increase(c[2m])", src, 90) == {ls(): pytest.approx(65.0)}


def test_delta_of_a_gauge_may_be_negative_and_ignores_resets() -> None:
    src = source(series("g", regular(0, 60, [10, 7, 4])))
    # (0, 120] holds 7 and 4: change -3 over 60 s, extrapolated 60 s to the start.
    assert query("delta(g[2m])", src, 120) == {ls(): pytest.approx(-6.0)}


def test_fewer_than_two_samples_give_no_rate() -> None:
    src = source(series("c", [(50, 3.0)]))
    assert query("rate(c[1m])", src, 60) == {}
    assert query("irate(c[1m])", src, 60) == {}


def test_irate_and_idelta_use_the_last_two_samples() -> None:
    src = source(series("c", [(0, 10.0), (15, 40.0), (30, 100.0)], job="api"))
    assert query("irate(c[1m])", src, 30) == {ls(job="api"): pytest.approx(4.0)}
    assert query("idelta(c[1m])", src, 30) == {ls(job="api"): pytest.approx(60.0)}
    reset = source(series("c", [(0, 10.0), (15, 100.0), (30, 5.0)]))
    assert query("irate(c[1m])", reset, 30) == {ls(): pytest.approx(5 / 15)}
    assert query("idelta(c[1m])", reset, 30) == {ls(): pytest.approx(-95.0)}


def test_offset_shifts_the_rate_window() -> None:
    src = source(series("c", regular(0, 60, [0, 60, 120, 600, 1200])))
    assert query("increase(c[2m] offset 2m)", src, 240) == {ls(): pytest.approx(120.0)}


def test_rate_in_a_range_query_uses_each_step_window() -> None:
    from opsplane.metrics.promql import range_query

    result = range_query("rate(requests_total[1m])", steady_counter(), 120, 240, 60)
    assert [labels for labels, _ in result.series] == [(("job", "api"),)]
    assert [t for t, _ in result.series[0][1]] == [120.0, 180.0, 240.0]
    assert all(v == pytest.approx(1.0) for _, v in result.series[0][1])
