"""Any JSON value as a person reads it, for the event sentences (`summary.py`,
`summary_backup.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opsplane.units import format_value


def text(value: Any) -> str:
    """Any JSON value as a person reads it: mappings as `k=v, k=v`, lists joined by commas,
    yes/no for booleans, nothing for null, numbers to a few significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_value(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        shown = [(key, text(item)) for key, item in value.items()]
        return ", ".join(f"{key}={item}" if " " not in item else f"{key}=({item})"
                         for key, item in shown if item)
    if isinstance(value, Sequence):
        items = [text(item) for item in value]
        joiner = "; " if any(isinstance(item, Mapping) for item in value) else ", "
        return joiner.join(item for item in items if item)
    return str(value)
