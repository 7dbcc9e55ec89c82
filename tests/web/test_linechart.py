"""Time charts with axes: round ticks, values in their units, where things are drawn."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from opsplane.units import Unit
from opsplane.web.linechart import (
    BOTTOM,
    HEIGHT,
    LEFT,
    RIGHT,
    TOP,
    WIDTH,
    Line,
    Threshold,
    axis_labels,
    time_chart,
    time_ticks,
    value_ticks,
)

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def test_value_ticks_are_round_steps_from_zero_to_just_above_the_top() -> None:
    assert value_ticks(0.023) == [0, 0.005, 0.01, 0.015, 0.02, 0.025]
    assert value_ticks(37) == [0, 10, 20, 30, 40]
    assert value_ticks(1) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert value_ticks(0.0123) == [0, 0.0025, 0.005, 0.0075, 0.01, 0.0125]
    for top in (0.0007, 0.3, 4.2, 980, 12_345):
        ticks = value_ticks(top)
        assert ticks[0] == 0 and ticks[-1] >= top and ticks[-2] < top and 3 <= len(ticks) <= 7
    with pytest.raises(ValueError, match="positive"):
        value_ticks(0)


def test_axis_labels_carry_the_unit_and_line_up() -> None:
    assert axis_labels(value_ticks(0.02), Unit.RATIO) == ["0.0%", "0.5%", "1.0%", "1.5%", "2.0%"]
    assert axis_labels(value_ticks(1.2), Unit.PER_SECOND) == [
        "0.00/s", "0.25/s", "0.50/s", "0.75/s", "1.00/s", "1.25/s"]
    assert axis_labels(value_ticks(0.009), Unit.SECONDS) == ["0 ms", "2 ms", "4 ms", "6 ms", "8 ms", "10 ms"]
    assert axis_labels(value_ticks(0.9), Unit.SECONDS) == [
        "0.0 s", "0.2 s", "0.4 s", "0.6 s", "0.8 s", "1.0 s"]  # a top of a second: in seconds


def test_time_ticks_fall_on_round_minutes_and_hours_at_most_eight() -> None:
    def labels(start: float, length: float) -> list[str]:
        return [datetime.fromtimestamp(t, UTC).strftime("%H:%M") for t in time_ticks(start, start + length)]

    assert labels(T0 - 30, 900) == ["12:00", "12:02", "12:04", "12:06", "12:08", "12:10", "12:12", "12:14"]
    assert labels(T0, 3600)[:3] == ["12:00", "12:10", "12:20"]
    assert labels(T0 + 100, 21600) == ["13:00", "14:00", "15:00", "16:00", "17:00", "18:00"]
    assert labels(T0, 86400) == ["12:00", "15:00", "18:00", "21:00", "00:00", "03:00", "06:00", "09:00",
                                 "12:00"][:len(labels(T0, 86400))]
    assert all(len(time_ticks(T0 + 7, T0 + 7 + span)) <= 8 for span in (900, 3600, 21600, 86400))


def points(svg: str) -> list[list[tuple[float, float]]]:
    return [[tuple(map(float, p.split(","))) for p in found.split()]  # type: ignore[misc]
            for found in re.findall(r'<polyline class="line s\d" points="([^"]+)"', svg)]


def test_values_are_placed_on_the_time_and_value_axes() -> None:
    times = [T0 + 60 * n for n in range(5)]
    svg = str(time_chart(title="requests", unit=Unit.PER_SECOND, start=T0, end=T0 + 240,
                         lines=[Line("all", times, [0, 5, None, 10, 7.5])]))
    first, second = points(svg)  # split at the gap
    assert first == [(LEFT, TOP + PLOT_H), (LEFT + PLOT_W / 4, TOP + PLOT_H / 2)]
    assert second[0] == (LEFT + PLOT_W * 3 / 4, TOP)  # 10 is the top of the axis
    assert ">10/s</text>" in svg and ">0/s</text>" in svg and ">12:00</text>" in svg
    assert ">UTC</text>" in svg
    bands = re.findall(r'<rect class="hover"[^>]*><title>([^<]+)</title>', svg)
    assert bands[1] == "12:01 UTC: all 5/s" and bands[2] == "12:02 UTC: no data"


def test_a_threshold_is_drawn_at_its_value_and_the_axis_reaches_above_it() -> None:
    times = [T0 + 15 * n for n in range(4)]
    svg = str(time_chart(title="errors", unit=Unit.RATIO, start=T0, end=T0 + 45,
                         lines=[Line("5xx share", times, [0.001, 0.002, 0.004, 0.003])],
                         thresholds=[Threshold(0.01, "HighErrorRate > 1 %"),
                                     Threshold(0.005, "Other > 0.5 % (pending)", firing=False)]))
    labels = re.findall(r'class="ytick"[^>]*>([^<]+)<', svg)
    assert labels[0] == "0.00%" and labels[-1] == "1.25%"  # above the threshold: its line shows
    [firing] = re.findall(r'<line class="threshold firing"[^>]* y1="([\d.]+)"', svg)
    assert float(firing) == pytest.approx(TOP + PLOT_H * (1 - 0.01 / 0.0125), abs=0.1)
    assert ">HighErrorRate &gt; 1 %</text>" in svg
    assert '<line class="threshold pending"' in svg


def test_an_empty_chart_has_its_axes_and_greys_out_what_is_not_known() -> None:
    svg = str(time_chart(title="latency <p99>", unit=Unit.SECONDS, start=T0, end=T0 + 3600,
                         lines=[Line("p99", [T0 + 3600], [None])], known_from=T0 + 1800,
                         unknown_label="before serve started",
                         failed=[(T0 + 2000, True), (T0 + 2100, False)]))
    assert "<polyline" not in svg and "<circle" not in svg
    assert re.search(r'<rect class="unknown" x="70" y="14" width="337.0"', svg)
    assert ">before serve started</text>" in svg
    assert ">10 ms</text>" in svg  # a sensible scale for nothing yet
    assert svg.count('class="fail"') == 1
    assert 'aria-label="latency &lt;p99&gt;"' in svg
