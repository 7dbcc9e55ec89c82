"""Building series and reading results in the PromQL tests."""

from __future__ import annotations

from collections.abc import Sequence

from opsplane.metrics.promql import (
    InstantVector,
    Labels,
    Matrix,
    MemorySource,
    Sample,
    Scalar,
    Value,
    instant,
)


def series(name: str, samples: Sequence[Sample], **labels: str) -> tuple[dict[str, str], list[Sample]]:
    """One series named `name` with the given labels and samples."""
    return {"__name__": name, **labels}, list(samples)


def regular(start: float, step: float, values: Sequence[float]) -> list[Sample]:
    """Samples at start, start + step, ... carrying `values` in order."""
    return [(start + i * step, float(v)) for i, v in enumerate(values)]


def source(*items: tuple[dict[str, str], list[Sample]]) -> MemorySource:
    return MemorySource(items)


def as_dict(value: Value) -> dict[Labels, float]:
    """An instant vector as {labels: value}, so tests do not depend on order."""
    assert isinstance(value, InstantVector), value
    out = dict(value.samples)
    assert len(out) == len(value.samples), "duplicate label sets in result"
    return out


def by_labels(value: Value) -> dict[frozenset[tuple[str, str]], float]:
    """An instant vector keyed by label set as a frozenset, for compact expectations."""
    return {frozenset(labels): v for labels, v in as_dict(value).items()}


def ls(**labels: str) -> frozenset[tuple[str, str]]:
    """A label set written as keyword arguments; `name` stands for `__name__`."""
    return frozenset(("__name__" if k == "name" else k, v) for k, v in labels.items())


def scalar(value: Value) -> float:
    assert isinstance(value, Scalar), value
    return value.value


def query(expr: str, src: MemorySource, at: float) -> dict[frozenset[tuple[str, str]], float]:
    return by_labels(instant(expr, src, at))


def matrix(value: Value) -> dict[frozenset[tuple[str, str]], list[Sample]]:
    assert isinstance(value, Matrix), value
    return {frozenset(labels): samples for labels, samples in value.series}
