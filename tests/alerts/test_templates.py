"""Annotation templates render as Prometheus renders them."""

from __future__ import annotations

import math
import re

import pytest

from opsplane.alerts.templates import TemplateError, go_float, parse_template, render


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.05, "0.05"), (1e6, "1e+06"), (123456.0, "123456"), (1234567.0, "1.234567e+06"),
     (1e-05, "1e-05"), (0.0001, "0.0001"), (-2.5, "-2.5"), (0.0, "0"), (math.inf, "+Inf"),
     (math.nan, "NaN"), (3.0, "3")],
)
def test_value_prints_like_go(value: float, text: str) -> None:
    assert go_float(value) == text


@pytest.mark.parametrize(
    ("template", "value", "text"),
    [
        ("{{ $value | humanize }}", 1234567, "1.235M"),
        ("{{ humanize $value }}", 0.0123, "12.3m"),
        ("{{ $value | humanize }}", 0, "0"),
        ("{{ $value | humanizePercentage }}", 0.0534, "5.34%"),
        ("{{ $value | humanizeDuration }}", 3725, "1h 2m 5s"),
        ("{{ $value | humanizeDuration }}", 90061, "1d 1h 1m 1s"),
        ("{{ $value | humanizeDuration }}", 42.5, "42.5s"),
        ("{{ $value | humanizeDuration }}", 0.25, "250ms"),
        ("{{ $value | humanize1024 }}", 1536, "1.5ki"),
        ("{{ humanize1024 $value }}B", 4.2e9, "3.912GiB"),
        ("{{ $value | humanize1024 }}", 0.5, "0.5"),
        ("{{ $labels.service | toUpper }}", 0, "ORDERS"),
        ("{{$labels.missing}}!", 0, "!"),
    ],
)
def test_functions_format_like_prometheus(template: str, value: float, text: str) -> None:
    assert render(template, {"service": "orders"}, float(value)) == text


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ .Labels.x }}", "only $value and $labels"),
        ("{{ $value | printf }}", "unknown function 'printf'"),
        ("{{ range $labels }}x{{ end }}", "unknown function 'range'"),
        ("{{ $value ", "never closed"),
        ("{{ $value | }}", "empty stage"),
    ],
)
def test_anything_else_is_refused_with_the_reason(template: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(problem)):
        parse_template(template)


@pytest.mark.parametrize(
    ("unit", "value", "text"),
    [("ratio", 0.019037883636991926, "fails 1.9%"), ("seconds", 0.5123, "fails 512 ms"),
     ("bytes", 4.2e9, "fails 3.91 GiB"), ("count", 3.0, "fails 3"), (None, 0.019037883636991926,
                                                                      "fails 0.019037883636991926")],
)
def test_a_bare_value_reads_in_the_rules_unit(unit: str | None, value: float, text: str) -> None:
    assert render("fails {{ $value }}", {}, value, unit) == text


def test_functions_format_as_prometheus_whatever_the_unit() -> None:
    assert render("{{ $value | humanizePercentage }}", {}, 0.0534, "seconds") == "5.34%"
