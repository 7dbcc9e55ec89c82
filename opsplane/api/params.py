"""The parameter types the API's routes share, each declared in the OpenAPI document exactly
as it is read, so the document and the routes cannot disagree.

- `Instant`: every time a route takes (`since`, `until`, `at`, `start`, `time`, ...), in the
  two forms Prometheus's HTTP API reads: an RFC 3339 time with its offset, or Unix seconds.
- `ROW_ID_MAX`: the largest id a store row can have (SQLite's INTEGER and PostgreSQL's
  BIGINT are signed 64-bit), the bound of every integer id a route takes; `row_id` reads
  one from a path, where anything else names no row.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import PlainValidator, WithJsonSchema

from opsplane.timefmt import EARLIEST, LATEST

ROW_ID_MAX = 2**63 - 1
_ROW_ID_DIGITS = len(str(ROW_ID_MAX))


def row_id(text: str) -> int | None:
    """The id `text` writes in ASCII digits, from 1 to ROW_ID_MAX; None for anything else
    (signs, spaces, other scripts' digits, a number no row can have), which names no row.
    A store is never asked for an id past its integers (SQLite raises OverflowError)."""
    if not (text.isascii() and text.isdigit()) or len(text) > _ROW_ID_DIGITS:
        return None
    number = int(text)
    return number if 1 <= number <= ROW_ID_MAX else None

_LATEST_SECONDS = LATEST.timestamp()
_YEARS = r"^(19[7-9][0-9]|[2-8][0-9]{3})-"
# RFC 3339's date-time (section 5.6): the offset is required, T and Z in either case.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")
# JSON's number: no sign but minus, no leading zeros, no nan, inf or underscores.
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
TIME_FORMS = ("an RFC 3339 time with its offset (2026-11-24T02:00:00Z) or Unix seconds "
              "(1795485600.5), from 1970 to the end of 8999")


def parse_instant(value: Any) -> datetime:
    """The time `value` names, in UTC; ValueError naming the accepted forms otherwise."""
    text = value if isinstance(value, str) else str(value)
    if _NUMBER.fullmatch(text):
        seconds = float(text)
        if not 0 <= seconds < _LATEST_SECONDS:
            raise ValueError(f"{text} is outside the times this API takes: give {TIME_FORMS}")
        return datetime.fromtimestamp(seconds, UTC)
    if not _RFC3339.fullmatch(text):
        raise ValueError(f"cannot read {text[:40]!r} as a time: give {TIME_FORMS}")
    # The year as written, as the document's pattern says; the offset may move the time a
    # day past EARLIEST or LATEST, which changes nothing.
    if not EARLIEST.year <= int(text[:4]) < LATEST.year:
        raise ValueError(f"{text[:40]} is outside the times this API takes: give {TIME_FORMS}")
    text = text.upper()
    if text[17:19] == "60":  # a leap second, which RFC 3339 allows and datetime does not
        text = text[:17] + "59" + text[19:]
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a valid time: give {TIME_FORMS}") from None


Instant = Annotated[
    datetime,
    PlainValidator(parse_instant),
    WithJsonSchema({
        "anyOf": [
            {"type": "string", "format": "date-time", "pattern": _YEARS},
            {"type": "number", "minimum": 0, "exclusiveMaximum": _LATEST_SECONDS},
        ],
        "description": f"A time: {TIME_FORMS}.",
    }),
]
