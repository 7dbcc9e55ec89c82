"""Measured values as people read them, in the unit of what was measured.

An alert rule's expression returns a bare number: 0.019037883636991926 is an error ratio,
0.512 a latency in seconds, 4.2e9 a size in bytes. `format_value` writes it the way the
rule's `unit` says (1.9%, 512 ms, 3.91 GiB); the exact number stays wherever a program
reads it (`--json`, webhook bodies). Without a unit a value is a plain number of a few
significant digits, never an exponent for everyday magnitudes.
"""

from __future__ import annotations

import math
from enum import StrEnum

from opsplane.timefmt import span


class Unit(StrEnum):
    """What an alert's value measures."""

    RATIO = "ratio"  # a share between 0 and 1, shown as a percentage
    PERCENT = "percent"  # already a percentage, 0 to 100
    SECONDS = "seconds"
    BYTES = "bytes"
    COUNT = "count"  # things counted: failures in a row, restarts, queued jobs
    PER_SECOND = "per_second"  # a rate: requests per second


UNIT_NAMES = tuple(unit.value for unit in Unit)
_IEC = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def format_value(value: float | None, unit: Unit | str | None = None) -> str:
    """`value` for a person, in `unit` (None or one not known: a plain number). No value
    (None or NaN) is '-'."""
    if value is None or math.isnan(value):
        return "-"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    kind = Unit(unit) if unit in UNIT_NAMES else None  # an unknown unit (a newer release's): a number
    if kind is Unit.RATIO:
        return _percent(value * 100)
    if kind is Unit.PERCENT:
        return _percent(value)
    if kind is Unit.SECONDS:
        return _seconds(value)
    if kind is Unit.BYTES:
        return _bytes(value)
    if kind is Unit.PER_SECOND:
        return f"{_number(value)}/s"
    return _number(value)


def _number(value: float) -> str:
    """Whole numbers as they are (with thousands separators), others to 4 significant
    digits: 3 -> '3', 1234567.8 -> '1,234,568', 0.019037 -> '0.01904'."""
    if value == int(value) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}" if abs(value) >= 1e-4 else f"{value:.2e}"


def _percent(points: float) -> str:
    """Two decimals at most (99.54%, 1.9%, 50%), two significant digits below 0.1%."""
    if points == 0:
        return "0%"
    if abs(points) < 0.1:
        return f"{points:.2g}%"
    text = f"{points:.2f}".rstrip("0").rstrip(".")
    return f"{text}%"


def _significant(value: float, digits: int = 3) -> str:
    text = f"{value:.{digits}g}"
    return text if "e" not in text else f"{value:.0f}"


def _seconds(value: float) -> str:
    """850 µs, 12.3 ms, 512 ms, 1.23 s, 45.2 s, then minutes and hours: 2m 05s, 1h 02m."""
    size = abs(value)
    if size == 0:
        return "0 s"
    if size < 1e-3:
        return f"{_significant(value * 1e6)} µs"
    if size < 1:
        return f"{_significant(value * 1e3)} ms"
    if size < 60:
        return f"{_significant(value)} s"
    return ("-" if value < 0 else "") + span(size)


def _bytes(value: float) -> str:
    """512 B, 1.5 KiB, 3.91 GiB: powers of 1024, three significant digits."""
    size, index = abs(value), 0
    while size >= 1024 and index < len(_IEC) - 1:
        size /= 1024
        index += 1
    sign = "-" if value < 0 else ""
    shown = f"{size:.0f}" if index == 0 else _significant(size)
    return f"{sign}{shown} {_IEC[index]}"
