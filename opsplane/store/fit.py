"""Fitting values to their columns before they are written.

PostgreSQL refuses a text longer than its column's `String(n)` (SQLite stores it whatever
its length), and a refused row fails its whole transaction. Values that come from outside
(an alert's labels and texts, a Prometheus's alert names) may be of any length, so the
writers that store them pass them through here, with the table's own column lengths:

- `fit(table, values)`: every string cut to its column, ending in MARK when cut; for text
  people read (a title, a service name in the event log).
- `fit_key(column, value)`: the same for a value rows are looked up by: a cut value ends in
  MARK and a digest of the whole, so two long values stay two keys and the same value always
  gives the same key (compute it once and use it to write and to look up alike).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.orm import InstrumentedAttribute

MARK = "…"
_DIGEST = 16  # hex characters of SHA-256 that keep cut keys apart


def fit(table: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` (by column name) with every string longer than its column of `table` (a
    mapped class or a Table) cut to fit, ending in MARK."""
    lengths = _lengths(_table(table))
    return {name: _cut(value, lengths.get(name)) for name, value in values.items()}


def fit_text(column: InstrumentedAttribute[Any] | Column[Any], value: str) -> str:
    """`value` cut to `column` (such as `Event.service`), ending in MARK when cut."""
    return _cut(value, _length(column))


def fit_key(column: InstrumentedAttribute[Any] | Column[Any], value: str) -> str:
    """`value` fitted to `column` as a key: unchanged when it fits, else its start, MARK and
    a digest of the whole value."""
    length = _length(column)
    if length is None or len(value) <= length:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:_DIGEST]
    return value[: length - len(MARK) - _DIGEST] + MARK + digest


def _cut(value: Any, length: int | None) -> Any:
    if not isinstance(value, str) or length is None or len(value) <= length:
        return value
    return value[: length - len(MARK)] + MARK


def _table(table: Any) -> Table:
    found = getattr(table, "__table__", table)
    if not isinstance(found, Table):
        raise TypeError(f"not a table or a mapped class: {table!r}")
    return found


@cache
def _lengths(table: Table) -> dict[str, int]:
    return {column.name: length for column in table.columns
            if (length := getattr(column.type, "length", None)) is not None}


def _length(column: InstrumentedAttribute[Any] | Column[Any]) -> int | None:
    if isinstance(column, InstrumentedAttribute):
        column = column.property.columns[0]  # type: ignore[attr-defined]
    return getattr(column.type, "length", None)
