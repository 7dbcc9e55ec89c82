"""Values the PromQL engine reads and returns: labels, samples, matchers, series sources, results.

Everything here is plain data so that the scraper, the alert rules and the tests can build it
without touching the evaluator.
"""

from __future__ import annotations

import math
import re
import struct
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, overload

from opsplane.errors import OpsplaneError

Sample = tuple[float, float]
"""One observation: timestamp in seconds since the epoch, value."""

Labels = tuple[tuple[str, str], ...]
"""A label set sorted by name, including `__name__` when the series has one."""

STALE_NAN_BITS = 0x7FF0000000000002
"""The bit pattern Prometheus writes as a sample to say a series has gone away."""

STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]

METRIC_NAME = "__name__"


def is_stale(value: float) -> bool:
    """True when `value` is the stale marker, not merely some NaN a target exported."""
    return value != value and struct.pack("<d", value) == struct.pack("<Q", STALE_NAN_BITS)


def labels_of(mapping: dict[str, str]) -> Labels:
    """The sorted label tuple for a mapping; empty values are dropped as Prometheus does."""
    return tuple(sorted((name, value) for name, value in mapping.items() if value != ""))


def label_value(labels: Labels, name: str) -> str:
    """The value of label `name`, or "" when the series does not carry it."""
    for key, value in labels:
        if key == name:
            return value
    return ""


def format_labels(labels: Labels) -> str:
    """Labels in PromQL's own notation, `name{a="b"}`, for error messages."""
    name = label_value(labels, METRIC_NAME)
    rest = ", ".join(f'{key}="{value}"' for key, value in labels if key != METRIC_NAME)
    return f"{name}{{{rest}}}"


class PromQLError(OpsplaneError):
    """An expression could not be parsed, is outside the supported subset, or failed to evaluate.

    `construct` names the part of PromQL at fault (for example "subquery" or "predict_linear")
    so that a rule file can point its author at what to change.
    """

    exit_code = 3

    def __init__(self, message: str, construct: str | None = None, position: int | None = None):
        self.message = message
        self.construct = construct
        self.position = position
        super().__init__(message)


MATCH_OPS = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a selector; regular expressions are anchored at both ends."""

    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.op not in MATCH_OPS:
            raise PromQLError(f"unknown matcher operator {self.op!r} for label {self.name!r}", "matcher")
        if self.op in ("=~", "!~"):
            try:
                compiled = re.compile(f"(?:{_scoped_flags(self.value)})", re.DOTALL)
            except re.error as exc:
                raise PromQLError(
                    f"invalid regular expression {self.value!r} for label {self.name!r}: {exc}", "matcher"
                ) from exc
            object.__setattr__(self, "_regex", compiled)

    def matches(self, value: str) -> bool:
        """True when a label value (use "" for a missing label) satisfies this matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None  # set in __post_init__ for both regex operators
        found = self._regex.fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


_LEADING_FLAGS = re.compile(r"\(\?([ims]+)\)")


def _scoped_flags(pattern: str) -> str:
    """RE2 lets a pattern start with flags such as (?i); Python takes them only at the very
    start of the whole expression, so they become a scoped group: (?i)get -> (?i:get)."""
    lead = _LEADING_FLAGS.match(pattern)
    return f"(?{lead.group(1)}:{pattern[lead.end():]})" if lead else pattern


def matches_all(matchers: Sequence[Matcher], labels: Labels) -> bool:
    """True when a label set satisfies every matcher."""
    values = dict(labels)
    return all(m.matches(values.get(m.name, "")) for m in matchers)


class SampleColumns(Sequence[Sample]):
    """Samples kept as a column of times and a column of values, `times[lo:hi]` and
    `values[lo:hi]`.

    A SeriesSource may return this instead of a list of pairs; the engine then reads the two
    columns directly, without a tuple per sample, and without copying them when the source
    lends its own (lists or `array('d')`, which it must then never change in place, only
    append to).
    """

    __slots__ = ("times", "values", "lo", "hi", "stale")

    def __init__(self, times: Sequence[float], values: Sequence[float], lo: int = 0, hi: int | None = None,
                 *, stale: bool | None = None):
        if len(times) != len(values):
            raise PromQLError(f"{len(times)} sample times but {len(values)} values", "samples")
        self.times = times
        self.values = values
        self.lo = lo
        self.hi = len(times) if hi is None else hi
        self.stale = stale  # whether a stale marker is among them; None: not known

    def __len__(self) -> int:
        return self.hi - self.lo

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Sample]: ...

    def __getitem__(self, index: int | slice) -> Sample | Sequence[Sample]:
        if isinstance(index, slice):
            times, values = self.times[self.lo:self.hi], self.values[self.lo:self.hi]
            return SampleColumns(list(times[index]), list(values[index]))
        position = range(self.lo, self.hi)[index]
        return self.times[position], self.values[position]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"SampleColumns({list(self)!r})"


class SeriesSource(Protocol):
    """Where the engine reads samples from: the scraper's window, a test's list, ..."""

    def select(
        self, matchers: Sequence[Matcher], start: float, end: float
    ) -> Iterable[tuple[Labels, Sequence[Sample]]]:
        """Every series matching all matchers, with its samples in [start, end] ordered by time."""
        ...


class MemorySource:
    """Series held in memory, for tests and for expressions over a fixed data set.

    Series are indexed by metric name, and each matcher is tried once per distinct label value,
    so that selecting from ten thousand series stays cheap.
    """

    def __init__(self, series: Iterable[tuple[Labels | dict[str, str], Sequence[Sample]]] = ()):
        self._series: list[tuple[Labels, dict[str, str], list[float], list[float]]] = []
        self._by_name: dict[str, list[int]] = {}
        for labels, samples in series:
            self.add(labels, samples)

    def add(self, labels: Labels | dict[str, str], samples: Sequence[Sample]) -> None:
        """Add one series; its samples are sorted by time here so callers need not."""
        key = labels_of(labels) if isinstance(labels, dict) else tuple(sorted(labels))
        ordered = sorted(samples, key=lambda sample: sample[0])
        values = dict(key)
        self._by_name.setdefault(values.get(METRIC_NAME, ""), []).append(len(self._series))
        self._series.append((key, values, [t for t, _ in ordered], [v for _, v in ordered]))

    def select(
        self, matchers: Sequence[Matcher], start: float, end: float
    ) -> Iterable[tuple[Labels, Sequence[Sample]]]:
        """Every stored series matching all matchers, cut to [start, end]."""
        out: list[tuple[Labels, Sequence[Sample]]] = []
        memo: list[dict[str, bool]] = [{} for _ in matchers]
        for index in self._candidates(matchers):
            labels, values_by_name, times, values = self._series[index]
            if not _all_match(matchers, memo, values_by_name):
                continue
            lo, hi = bisect_left(times, start), bisect_right(times, end)
            out.append((labels, SampleColumns(times[lo:hi], values[lo:hi])))
        return out

    def _candidates(self, matchers: Sequence[Matcher]) -> Iterable[int]:
        for m in matchers:
            if m.name == METRIC_NAME and m.op == "=":
                return self._by_name.get(m.value, [])
        return range(len(self._series))


def _all_match(matchers: Sequence[Matcher], memo: list[dict[str, bool]], values: dict[str, str]) -> bool:
    for m, seen in zip(matchers, memo, strict=True):
        value = values.get(m.name, "")
        ok = seen.get(value)
        if ok is None:
            ok = seen[value] = m.matches(value)
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Scalar:
    """A single number, such as `time()` or `1 + 2`."""

    value: float


@dataclass(frozen=True)
class StringValue:
    """A string literal evaluated on its own."""

    value: str


@dataclass
class InstantVector:
    """One value per series at the evaluation time."""

    samples: list[tuple[Labels, float]]


@dataclass
class Matrix:
    """Several values per series: a range selector's samples, or a range query's result."""

    series: list[tuple[Labels, list[Sample]]]


Value = Scalar | StringValue | InstantVector | Matrix


def same_float(a: float, b: float, rel: float = 1e-9) -> bool:
    """Equality for results: NaN equals NaN, infinities by sign, others within relative error."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))
