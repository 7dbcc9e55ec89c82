"""Annotation templates: the small, safe part of Prometheus's template language.

An annotation such as `{{ $labels.service }} fails {{ $value | humanizePercentage }} of
requests` is rendered for each alert with its labels and the value of its expression. Only
label look-ups, the value and Prometheus's formatting functions exist: a template can
neither loop nor call out, so rendering cannot fail or hang once the inventory has loaded.

A bare `{{ $value }}` is written in the rule's `unit` when it has one (`1.9%` for a ratio,
`512 ms` for seconds) and as Prometheus prints it otherwise; the functions format as
Prometheus's do whatever the unit.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from opsplane.units import format_value

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_LABEL_REF = re.compile(r"^\$labels\.([A-Za-z_][A-Za-z0-9_]*)$")
_SI_UP = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SI_DOWN = ("m", "u", "n", "p", "f", "a", "z", "y")
_IEC_UP = ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi")


def go_float(value: float) -> str:
    """A float as Go's %v prints it (shortest digits; exponent below 1e-4 and from 1e6),
    so `{{ $value }}` reads the same as in Prometheus."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{prefix}{text}{'0' * (point - len(text))}"
    return f"{prefix}{text[:point]}.{text[point:]}"


def humanize(value: float) -> str:
    """4 significant digits with an SI prefix: 1234567 -> '1.235M', 0.0123 -> '12.3m'."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return f"{value:.4g}"
    prefixes, step = (_SI_UP, 1 / 1000) if abs(value) >= 1 else (_SI_DOWN, 1000.0)
    prefix = ""
    for candidate in prefixes:
        if (abs(value) < 1000) if step < 1 else (abs(value) >= 1):
            break
        prefix = candidate
        value *= step
    return f"{value:.4g}{prefix}"


def humanize1024(value: float) -> str:
    """4 significant digits with a binary prefix: 1536 -> '1.5ki', 4.2e9 -> '3.912Gi'."""
    if abs(value) <= 1 or math.isnan(value) or math.isinf(value):
        return f"{value:.4g}"
    prefix = ""
    for candidate in _IEC_UP:
        if abs(value) < 1024:
            break
        prefix, value = candidate, value / 1024
    return f"{value:.4g}{prefix}"


def humanize_percentage(value: float) -> str:
    """A ratio as a percentage: 0.0534 -> '5.34%'."""
    return f"{value * 100:.4g}%"


def humanize_duration(value: float) -> str:
    """Seconds as days, hours, minutes and seconds: 3725 -> '1h 2m 5s'."""
    if math.isnan(value) or math.isinf(value):
        return f"{value:.4g}"
    if value == 0:
        return "0s"
    if abs(value) < 1:
        prefix = ""
        for candidate in _SI_DOWN:
            if abs(value) >= 1:
                break
            prefix, value = candidate, value * 1000
        return f"{value:.4g}{prefix}s"
    sign, whole = ("-" if value < 0 else ""), int(abs(value))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{sign}{minutes}m {seconds}s"
    return f"{sign}{abs(value):.4g}s"


FUNCTIONS: dict[str, Callable[[str], str]] = {
    "toUpper": str.upper,
    "toLower": str.lower,
    "title": str.title,
}
NUMBER_FUNCTIONS: dict[str, Callable[[float], str]] = {
    "humanize": humanize,
    "humanize1024": humanize1024,
    "humanizePercentage": humanize_percentage,
    "humanizeDuration": humanize_duration,
}


@dataclass(frozen=True)
class _Action:
    """One `{{ ... }}`: an argument and the functions applied to it, left to right."""

    argument: str
    functions: tuple[str, ...]

    def render(self, labels: Mapping[str, str], value: float, unit: str | None = None) -> str:
        current: float | str = value if self.argument == "$value" else labels.get(
            self.argument.removeprefix("$labels."), ""
        )
        for name in self.functions:
            if name in NUMBER_FUNCTIONS:
                current = NUMBER_FUNCTIONS[name](_as_number(current))
            else:
                current = FUNCTIONS[name](_as_text(current, unit))
        return _as_text(current, unit)


def _as_number(current: float | str) -> float:
    if isinstance(current, float):
        return current
    try:
        return float(current)
    except ValueError:
        return math.nan


def _as_text(current: float | str, unit: str | None) -> str:
    if isinstance(current, str):
        return current
    return format_value(current, unit) if unit else go_float(current)


class TemplateError(ValueError):
    """A template uses something outside the supported language."""


def _parse_action(body: str) -> _Action:
    words = body.strip()
    if words.startswith("-") or words.endswith("-"):
        words = words.strip("- ")
    stages = [stage.split() for stage in words.split("|")]
    if any(not stage for stage in stages):
        raise TemplateError(f"empty stage in {{{{{body}}}}}")
    first, *rest = stages
    if len(first) == 2:  # function-first form: {{ humanize $value }}
        first, rest = [first[1]], [[first[0]], *rest]
    if len(first) != 1 or any(len(stage) != 1 for stage in rest):
        raise TemplateError(f"cannot read {{{{{body}}}}}: write {{{{ $value }}}}, "
                            "{{ $labels.name }} or {{ $value | humanize }}")
    argument = first[0]
    functions = tuple(stage[0] for stage in rest)
    for name in functions:
        if name not in FUNCTIONS and name not in NUMBER_FUNCTIONS:
            known = ", ".join(sorted([*NUMBER_FUNCTIONS, *FUNCTIONS]))
            raise TemplateError(f"unknown function {name!r} in {{{{{body}}}}}; known: {known}")
    if argument != "$value" and not _LABEL_REF.match(argument):
        raise TemplateError(f"unknown value {argument!r} in {{{{{body}}}}}: only $value and "
                            "$labels.<name> can be used")
    return _Action(argument, functions)


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text and actions, alternating."""

    parts: tuple[str | _Action, ...]

    def render(self, labels: Mapping[str, str], value: float, unit: str | None = None) -> str:
        """The text for one alert; a bare `{{ $value }}` is written in `unit` when given."""
        return "".join(
            part if isinstance(part, str) else part.render(labels, value, unit) for part in self.parts
        )



@functools.lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """The parsed template (kept: each cycle renders the same few for every alert); raises
    TemplateError naming the bad action."""
    parts: list[str | _Action] = []
    position = 0
    for match in _ACTION.finditer(text):
        parts.append(text[position:match.start()])
        parts.append(_parse_action(match.group(1)))
        position = match.end()
    tail = text[position:]
    if "{{" in tail:
        raise TemplateError("a '{{' is never closed by '}}'")
    parts.append(tail)
    return Template(tuple(part for part in parts if part != ""))


# How Prometheus's own functions write a value of each unit, for exported annotations
_PROMETHEUS_FORMAT = {
    "ratio": "{{ $value | humanizePercentage }}",
    "percent": "{{ $value | humanize }}%",
    "seconds": "{{ $value | humanizeDuration }}",
    "bytes": "{{ $value | humanize1024 }}B",
    "count": "{{ $value | humanize }}",
    "per_second": "{{ $value | humanize }}/s",
}


def for_prometheus(text: str, unit: str | None) -> str:
    """`text` with each bare `{{ $value }}` spelled with the Prometheus function that writes
    the value in `unit`, so an exported annotation reads as opsplane's does."""
    if not unit:
        return text

    def spell(match: re.Match[str]) -> str:
        action = _parse_action(match.group(1))
        bare = action.argument == "$value" and not action.functions
        return _PROMETHEUS_FORMAT[unit] if bare else match.group(0)

    return _ACTION.sub(spell, text)


def render(text: str, labels: Mapping[str, str], value: float, unit: str | None = None) -> str:
    """Render `text` for one alert."""
    return parse_template(text).render(labels, value, unit)
