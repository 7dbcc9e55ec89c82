"""Reading a metrics page: the Prometheus text format (0.0.4) and OpenMetrics, into samples.

Only what the store keeps is produced: each sample line as (labels, value), labels sorted
and including `__name__`. Comments, HELP, TYPE and UNIT lines are skipped; exemplars and
timestamps after the value are ignored (the scrape's time is the sample's time, as
Prometheus does unless told to honour timestamps). A line that is not a sample is an
`ExpositionError` naming its line number, so a target sending garbage is reported, never
half-ingested.

Speed matters (a large target sends tens of thousands of lines per scrape): a line without
labels is split by hand, and labels go through one regular expression only when present.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from opsplane.errors import OpsplaneError
from opsplane.metrics.promql import Labels

METRIC_NAME = "__name__"
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|(?=\}))')
_UNESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "\\": "\\", '"': '"'}
_SPECIAL = {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf, "Inf": math.inf}


class ExpositionError(OpsplaneError):
    """The page is not in the Prometheus text format or OpenMetrics."""


def parse_samples(text: str, known: dict[str, Labels] | None = None) -> Iterator[tuple[Labels, float]]:
    """Every sample of a metrics page, in page order.

    `known` maps the text of a series (the line up to its value) to its labels: a target
    sends the same series scrape after scrape, so a caller that keeps this mapping between
    scrapes reads most lines with one dictionary lookup instead of parsing their labels.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        if not line or line[0] == "#":
            continue
        try:
            if known is None:
                yield _sample(line)
                continue
            end = line.rfind("}") + 1 or line.find(" ")
            labels = known.get(line[:end]) if end > 0 else None
            if labels is None:
                labels, value = _sample(line)
                if end > 0:
                    known[line[:end]] = labels
            else:
                rest = line[end:].split()
                if not rest:
                    raise ValueError("expected a value after the labels")
                value = _value(rest[0])
            yield labels, value
        except ValueError as exc:
            shown = line if len(line) <= 120 else line[:117] + "..."
            raise ExpositionError(f"line {number}: {exc}: {shown!r}") from None


def _sample(line: str) -> tuple[Labels, float]:
    brace = line.find("{")
    if brace < 0:
        parts = line.split()
        if len(parts) < 2 or not _NAME.fullmatch(parts[0]):
            raise ValueError("expected a metric name and a value")
        return ((METRIC_NAME, parts[0]),), _value(parts[1])
    name = line[:brace].strip()
    if not _NAME.fullmatch(name):
        raise ValueError("expected a metric name before {")
    labels, end = _labels(line, brace + 1)
    rest = line[end:].split()
    if not rest:
        raise ValueError("expected a value after the labels")
    labels[METRIC_NAME] = name
    return tuple(sorted(labels.items())), _value(rest[0])


def _labels(line: str, position: int) -> tuple[dict[str, str], int]:
    labels: dict[str, str] = {}
    while True:
        while position < len(line) and line[position] == " ":
            position += 1
        if position < len(line) and line[position] == "}":
            return labels, position + 1
        match = _LABEL.match(line, position)
        if match is None:
            raise ValueError(f"cannot read a label at column {position + 1}")
        name, raw = match.group(1), match.group(2)
        if name in labels:
            raise ValueError(f"label {name} appears twice")
        labels[name] = _UNESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), raw) \
            if "\\" in raw else raw
        position = match.end()


def _value(text: str) -> float:
    special = _SPECIAL.get(text)
    if special is not None:
        return special
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
