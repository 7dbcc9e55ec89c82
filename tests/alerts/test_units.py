"""Values read in their rule's unit: shares as percentages, seconds as ms or s, bytes in
powers of 1024, counts as whole numbers; no value is '-'."""

from __future__ import annotations

import math

import pytest

from opsplane.units import format_value

RAW = 0.019037883636991926


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (RAW, "ratio", "1.9%"), (0.99537, "ratio", "99.54%"), (0.5, "ratio", "50%"),
        (0.000123, "ratio", "0.012%"),
        (0.0, "ratio", "0%"), (99.5, "percent", "99.5%"), (RAW, "percent", "0.019%"),
        (0.5123, "seconds", "512 ms"), (0.0123, "seconds", "12.3 ms"), (0.00085, "seconds", "850 µs"),
        (1.234, "seconds", "1.23 s"), (125, "seconds", "2m 05s"), (RAW, "seconds", "19 ms"),
        (512, "bytes", "512 B"), (1536, "bytes", "1.5 KiB"), (4.2e9, "bytes", "3.91 GiB"),
        (3.0, "count", "3"), (2.5, "count", "2.5"), (1234567.8, "count", "1,234,568"),
        (12.345, "per_second", "12.35/s"), (RAW, "per_second", "0.01904/s"),
        (RAW, None, "0.01904"), (1234567.8, None, "1,234,568"), (1e-6, None, "1.00e-06"),
        (RAW, "furlongs", "0.01904"),  # a unit this release does not know: a plain number
    ],
)
def test_a_value_reads_in_its_unit(value: float, unit: str | None, text: str) -> None:
    assert format_value(value, unit) == text


@pytest.mark.parametrize("missing", [None, math.nan])
def test_no_value_reads_as_a_dash(missing: float | None) -> None:
    assert format_value(missing, "ratio") == "-"


def test_infinities_are_named() -> None:
    assert (format_value(math.inf, "seconds"), format_value(-math.inf)) == ("+Inf", "-Inf")
