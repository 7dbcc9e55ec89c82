"""Small value types of the inventory: durations, percentages, time zones and times of day, and
secret references."""

from __future__ import annotations

import os
import re
from datetime import time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

from opsplane.errors import SecretError


class Strict(BaseModel):
    """An inventory section: unknown fields are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

# the sign is accepted here so that "-5s" is reported as not positive rather than malformed;
# several parts from the largest unit down ("1h30m", as Prometheus writes them) add up
_DURATION = re.compile(r"^\s*-?(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_UNIT_ORDER = ("d", "h", "m", "s", "ms")


def parse_duration(value: Any) -> float:
    """Seconds from '500ms', '10s', '5m', '1h', '7d' or a bare number of seconds."""
    seconds = _seconds(value)
    if seconds <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    return seconds


def parse_wait(value: Any) -> float:
    """Like parse_duration, and zero ('0s') is allowed: a wait that may be none at all."""
    seconds = _seconds(value)
    if seconds < 0:
        raise ValueError(f"expected a duration of zero or more, got {value!r}")
    return seconds


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, 500ms or 5m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION.match(value) and _units_descend(value):
        parts = _DURATION_PART.findall(value)
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
        if value.strip().startswith("-"):
            seconds = -seconds
    else:
        raise ValueError(f"expected a duration such as 10s, 500ms or 5m, got {value!r}")
    return seconds


def _units_descend(value: str) -> bool:
    """Each unit at most once, largest first: '1h30m' yes, '30m1h' and '1m1m' no."""
    ranks = [_UNIT_ORDER.index(unit) for _, unit in _DURATION_PART.findall(value)]
    return all(a < b for a, b in zip(ranks, ranks[1:], strict=False))


def format_duration(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "A duration: 500ms, 10s, 5m, 1h30m, 7d, or a number of seconds.",
        }
    ),
]

Wait = Annotated[
    float,
    BeforeValidator(parse_wait),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^(\d+(\.\d+)?(ms|s|m|h|d))+$"},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration of zero or more: 0s, 500ms, 10s, 5m, or a number of seconds.",
        }
    ),
]


def _parse_ratio(value: Any) -> float:
    """A fraction from 0.8, '80%' or 80 (numbers above 1 are read as percentages)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        number = float(value.strip()[:-1])
        ratio = round(number / 100, 12)  # 99.9% is 0.999, not 0.9990000000000001
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ratio = round(float(value) / 100, 12) if value > 1 else float(value)
    else:
        raise ValueError(f"expected a percentage such as 80% or 0.8, got {value!r}")
    if not 0 <= ratio <= 1:
        raise ValueError(f"expected a percentage between 0% and 100%, got {value!r}")
    return ratio


Ratio = Annotated[
    float,
    BeforeValidator(_parse_ratio),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
                {"type": "number", "minimum": 0, "maximum": 100},
            ],
            "description": "A percentage: 80% or 0.8.",
        }
    ),
]

_SECRET = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$")


class SecretRef(str):
    """A reference to a secret (`env:NAME` or `file:/path`); never the value itself."""

    def resolve(self, environ: dict[str, str] | None = None) -> str:
        """The secret's value; raises SecretError naming the reference when it cannot be read."""
        scheme, _, target = self.partition(":")
        if scheme == "env":
            env = os.environ if environ is None else environ
            if target not in env:
                raise SecretError(f"secret {self} is not set: export {target} in the environment")
            return env[target]
        try:
            return Path(target).read_text().rstrip("\n")
        except OSError as exc:
            raise SecretError(f"secret {self} cannot be read: {exc.strerror}") from None

    def __repr__(self) -> str:
        return f"SecretRef({str(self)!r})"


def _parse_secret(value: Any) -> str:
    # Messages never repeat the value: it may be the very secret that must not be in the file.
    if isinstance(value, str) and _SECRET.match(value):
        return value
    if isinstance(value, str) and value.startswith("file:"):
        raise ValueError(
            "a file: secret reference needs an absolute path, such as file:/run/secrets/db-password"
        )
    if isinstance(value, str) and value.startswith("env:"):
        raise ValueError(
            "an env: secret reference needs a variable name (letters, digits and _), "
            "such as env:DB_PASSWORD"
        )
    raise ValueError(
        "a literal secret where a secret reference is expected: use a secret reference: env:NAME or "
        "file:PATH (secrets are never written in the configuration file)"
    )


Secret = Annotated[
    str,
    BeforeValidator(_parse_secret),
    AfterValidator(SecretRef),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": _SECRET.pattern,
            "description": "A secret reference: env:NAME or file:/absolute/path.",
        }
    ),
]


def zone(value: str) -> str:
    """`value` when it is an IANA time zone name; a ValueError that says so otherwise."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin or "
                         "UTC") from None
    return value


def _hh_mm(value: object) -> object:
    # YAML 1.1 reads an unquoted 10:00 as the sexagesimal number 600; take it back as a time
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    return value


TimeZone = Annotated[str, AfterValidator(zone)]  # an IANA name such as Europe/Berlin
TimeOfDay = Annotated[time, BeforeValidator(_hh_mm)]  # "10:00", quoted or not
