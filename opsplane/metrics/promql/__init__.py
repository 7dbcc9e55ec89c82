"""A PromQL engine for opsplane's alert rules and `opsplane query`.

`parse` turns an expression into a tree, refusing by name whatever the engine does not
implement; `instant` and `range_query` evaluate it over any `SeriesSource` with Prometheus's
lookback, staleness, extrapolation and vector-matching rules. docs/promql.md lists the subset.
"""

from opsplane.metrics.promql.engine import DEFAULT_LOOKBACK, InstantEvaluation, instant, range_query
from opsplane.metrics.promql.model import (
    STALE_NAN,
    InstantVector,
    Labels,
    Matcher,
    Matrix,
    MemorySource,
    PromQLError,
    Sample,
    SampleColumns,
    Scalar,
    SeriesSource,
    StringValue,
    Value,
    is_stale,
    labels_of,
    same_float,
)
from opsplane.metrics.promql.syntax import Expr, parse

__all__ = [
    "DEFAULT_LOOKBACK",
    "STALE_NAN",
    "Expr",
    "InstantEvaluation",
    "InstantVector",
    "Labels",
    "Matcher",
    "Matrix",
    "MemorySource",
    "PromQLError",
    "Sample",
    "SampleColumns",
    "Scalar",
    "SeriesSource",
    "StringValue",
    "Value",
    "instant",
    "is_stale",
    "labels_of",
    "parse",
    "range_query",
    "same_float",
]
