"""Line charts with axes, drawn on the server: time across in UTC, a value with its unit up.

Pure functions from values to SVG markup, like `charts.py`: the page needs no script to draw
them, and tests read them as strings. The value axis starts at zero and ends at a round number
above the highest value or threshold (or covers the bounds a chart gives, such as an SLI's
99 % to 100 %); its ticks are steps of 1, 2, 2.5 or 5 times a power of ten, labelled in the
chart's unit (%, requests/s, ms or s). The time axis has at most eight ticks on round minutes,
hours or days; a chart longer than a day labels its ticks with dates. Every text that reaches
the SVG is escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape

from opsplane.units import Unit, format_value

WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 70, 16, 14, 30
MAX_TIME_TICKS = 8
_TIME_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 345600,
               604800, 1209600, 2419200)
DAY = 86400.0
_MANTISSAS = (1.0, 2.0, 2.5, 5.0, 10.0)


# The value axis's top when every value is zero: a scale that still reads sensibly.
_SMALLEST_TOP = {Unit.RATIO: 0.01, Unit.PER_SECOND: 1.0, Unit.SECONDS: 0.01}


@dataclass(frozen=True)
class Line:
    """One series: a value (None: nothing known) at each time, in seconds since the epoch."""

    name: str
    times: Sequence[float]
    values: Sequence[float | None]


@dataclass(frozen=True)
class Threshold:
    """A rule's threshold drawn across the chart; `firing` rules are drawn solid, pending ones
    dashed."""

    value: float
    label: str
    firing: bool = True


# --- numbers and their words ----------------------------------------------------------------


def value_ticks(top: float, count: int = 5) -> list[float]:
    """Round ticks from 0 up to the first one at or above `top`, about `count` of them."""
    if not math.isfinite(top) or top <= 0:
        raise ValueError(f"the top of a value axis must be a positive number, not {top}")
    step = _round_step(top / count)
    steps = math.ceil(top / step - 1e-9)
    return [round(n * step, 12) for n in range(steps + 1)]


def ticks_between(low: float, high: float, count: int = 5) -> list[float]:
    """Round ticks from the first at or below `low` to the first at or above `high`, about
    `count` steps between them (zero among them when the span holds it)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        raise ValueError(f"a value axis must go up from its bottom: {low} to {high}")
    step = _round_step((high - low) / count)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(n * step, 12) for n in range(first, last + 1)]


def _round_step(rough: float) -> float:
    power = 10.0 ** math.floor(math.log10(rough))
    return next(m * power for m in _MANTISSAS if m * power >= rough * (1 - 1e-9))


def axis_labels(ticks: Sequence[float], unit: Unit) -> list[str]:
    """The labels of a value axis's ticks: one unit for all (ms below a top of 1 s, else s)
    and as many decimals as the step between ticks needs, so they line up."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else ticks[0] or 1.0
    if unit is Unit.RATIO:
        return [f"{_decimal(t * 100, step * 100)}%" for t in ticks]
    if unit is Unit.PER_SECOND:
        return [f"{_decimal(t, step)}/s" for t in ticks]
    if ticks[-1] >= 1:
        return [f"{_decimal(t, step)} s" for t in ticks]
    return [f"{_decimal(t * 1000, step * 1000)} ms" for t in ticks]


def _decimal(value: float, step: float | None = None) -> str:
    if step is not None:
        places = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
        if step > 0 and round(step, places) != step:  # 2.5, 0.25: one more place
            places += 1
        return f"{value:,.{places}f}"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    places = max(0, 2 - math.floor(math.log10(abs(value))))  # three significant digits
    return f"{value:.{places}f}".rstrip("0").rstrip(".")


def time_ticks(start: float, end: float) -> list[float]:
    """Round times (whole minutes, hours or days, UTC) inside [start, end], at most eight."""
    span = max(end - start, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= MAX_TIME_TICKS), _TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    return [float(t) for t in range(int(first), int(end) + 1, step)]


def clock_text(at: float) -> str:
    """'14:05' in UTC."""
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M")


def date_text(at: float) -> str:
    """'3 Dec' in UTC: a tick of a chart longer than a day."""
    day = datetime.fromtimestamp(at, UTC)
    return f"{day.day} {day:%b}"


def when_text(at: float) -> str:
    """'2026-12-03 14:00' in UTC: a point of a chart longer than a day."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M")


# --- the chart ------------------------------------------------------------------------------


def time_chart(
    *,
    title: str,
    unit: Unit,
    start: float,
    end: float,
    lines: Sequence[Line],
    thresholds: Sequence[Threshold] = (),
    known_from: float | None = None,
    unknown_label: str = "",
    failed: Sequence[tuple[float, bool]] = (),
    axis: tuple[float, float] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """The chart of `lines` from `start` to `end` (seconds since the epoch).

    Before `known_from` the plot is greyed out with `unknown_label` (say why: nothing was kept
    that long ago, or nothing watched yet). `failed` holds (time, any run failed) pairs that put
    a red tick under the plot. Each step has a hover band whose tooltip gives its time and values.
    `axis` (low, high): the value axis covers that span, rounded out to its ticks, instead of
    zero to the highest value; values beyond it are drawn at its edge.
    """
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    if axis is not None:
        ticks = ticks_between(*axis)
    else:
        found = [v for line in lines for v in line.values if v is not None and math.isfinite(v)]
        top = max([*found, *(t.value * 1.15 for t in thresholds if math.isfinite(t.value))], default=0.0)
        ticks = value_ticks(top if top > 0 else _SMALLEST_TOP[unit])
    floor, ceiling = ticks[0], ticks[-1]
    span = max(end - start, 1e-9)
    days = end - start > DAY  # ticks are dates, points are dated

    def x(at: float) -> float:
        return LEFT + (at - start) / span * plot_w

    def y(value: float) -> float:
        return TOP + plot_h * (1 - (min(max(value, floor), ceiling) - floor) / (ceiling - floor))

    parts = [f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}"/>']
    if known_from is not None and known_from > start:
        edge = x(min(known_from, end))
        parts.append(f'<rect class="unknown" x="{LEFT}" y="{TOP}" width="{edge - LEFT:.1f}" '
                     f'height="{plot_h}"/>')
        if unknown_label and edge - LEFT > 90:
            parts.append(f'<text class="unknown-label" x="{(LEFT + edge) / 2:.1f}" '
                         f'y="{TOP + plot_h / 2:.1f}">{escape(unknown_label)}</text>')
    for tick, label in zip(ticks, axis_labels(ticks, unit), strict=True):
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y(tick):.1f}" x2="{LEFT + plot_w}" '
                     f'y2="{y(tick):.1f}"/><text class="ytick" x="{LEFT - 6}" y="{y(tick) + 4:.1f}">'
                     f"{escape(label)}</text>")
    for at in time_ticks(start, end):
        parts.append(f'<line class="xtick" x1="{x(at):.1f}" y1="{TOP + plot_h}" x2="{x(at):.1f}" '
                     f'y2="{TOP + plot_h + 4}"/><text class="xtick" x="{x(at):.1f}" '
                     f'y="{TOP + plot_h + 17}">{date_text(at) if days else clock_text(at)}</text>')
    parts.append(f'<text class="axis-note" x="{LEFT + plot_w}" y="{height - 2}">UTC</text>')
    for n, line in enumerate(lines):
        parts.extend(_series(line, n, x, y))
    for at, bad in failed:
        if bad and start <= at <= end:
            parts.append(f'<rect class="fail" x="{x(at) - 2:.1f}" y="{TOP + plot_h - 5}" width="4" '
                         f'height="5"><title>runs not OK at {clock_text(at)} UTC</title></rect>')
    for threshold in thresholds:
        level = y(threshold.value)
        kind = "firing" if threshold.firing else "pending"
        parts.append(f'<line class="threshold {kind}" x1="{LEFT}" y1="{level:.1f}" '
                     f'x2="{LEFT + plot_w}" y2="{level:.1f}"/>'
                     f'<text class="threshold-label {kind}" x="{LEFT + 6}" '
                     f'y="{level - 5:.1f}">{escape(threshold.label)}</text>')
    parts.extend(_hover_bands(lines, unit, x, start, end, plot_h, when_text if days else clock_text))
    name = escape(title)
    return Markup(
        f'<svg class="timechart" role="img" aria-label="{name}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{name}</title>'
        + "".join(parts) + "</svg>")


Scale = Callable[[float], float]


def _series(line: Line, n: int, x: Scale, y: Scale) -> list[str]:
    """A polyline per run of known values, a dot for a value alone between gaps."""
    runs: list[list[tuple[float, float]]] = [[]]
    for at, value in zip(line.times, line.values, strict=True):
        if value is None or not math.isfinite(value):
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x(at), y(value)))
    found = []
    for run in runs:
        if len(run) == 1:
            found.append(f'<circle class="dot s{n}" cx="{run[0][0]:.1f}" cy="{run[0][1]:.1f}" r="2.5"/>')
        elif run:
            points = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            found.append(f'<polyline class="line s{n}" points="{points}"/>')
    return found


def _hover_bands(lines: Sequence[Line], unit: Unit, x: Scale, start: float, end: float,
                 plot_h: float, when: Callable[[float], str] = clock_text) -> list[str]:
    """An invisible band around each step of the first line's times, titled with every line's
    value there: what a reader gets by pointing at the chart."""
    if not lines or not lines[0].times:
        return []
    times = list(lines[0].times)
    edges = [start, *((a + b) / 2 for a, b in zip(times, times[1:], strict=False)), end]
    bands = []
    for i, at in enumerate(times):
        values = []
        for line in lines:
            value = line.values[i] if i < len(line.values) else None
            shown = "no data" if value is None else format_value(value, unit)
            values.append(f"{line.name} {shown}" if len(lines) > 1 or line.name else shown)
        if all(line.values[i] is None for line in lines if i < len(line.values)):
            values = ["no data"]
        left, right = x(max(edges[i], start)), x(min(edges[i + 1], end))
        bands.append(f'<rect class="hover" x="{left:.1f}" y="{TOP}" width="{max(right - left, 0.5):.1f}" '
                     f'height="{plot_h}"><title>{when(at)} UTC: '
                     f"{escape(', '.join(values))}</title></rect>")
    return bands
