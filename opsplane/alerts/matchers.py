"""Label matchers as Prometheus and Alertmanager write them: `name="value"`, `!=`, `=~`, `!~`.

Routes, inhibition rules and silences all select alerts this way, so an operator reads and
writes one syntax everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_LABEL = r"[A-Za-z_][A-Za-z0-9_]*"
LABEL_NAME = re.compile(rf"^{_LABEL}$")
_MATCHER = re.compile(rf"^\s*({_LABEL})\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True)
class Matcher:
    """One condition on one label. A missing label reads as the empty string, as in
    Alertmanager, so `team!="payments"` also matches alerts without a team."""

    name: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        if self.op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
            object.__setattr__(self, "_pattern", _compile(self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op is MatchOp.EQUAL:
            return actual == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return actual != self.value
        found = self._pattern.fullmatch(actual) is not None  # type: ignore[attr-defined]
        return found if self.op is MatchOp.REGEX else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op.value}"{escaped}"'


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def parse_matcher(text: str) -> Matcher:
    """A matcher from `name="value"` (quotes optional); ValueError says what is wrong."""
    match = _MATCHER.match(text)
    if not match:
        raise ValueError(
            f"cannot read matcher {text!r}: write label, operator (=, !=, =~, !~) and value, "
            'such as severity="P0" or service=~"orders|payments"'
        )
    name, op, raw = match.groups()
    return Matcher(name, MatchOp(op), _unquote(raw))


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        inner = raw[1:-1]
        return re.sub(r"\\(.)", r"\1", inner)
    if '"' in raw:
        raise ValueError(f"unbalanced quotes in matcher value {raw!r}")
    return raw


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def _coerce(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if not isinstance(value, str):
        raise ValueError(f'expected a matcher such as severity="P0", got {value!r}')
    return parse_matcher(value)


MatcherField = Annotated[
    Matcher,
    BeforeValidator(_coerce),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": rf"^\s*{_LABEL}\s*(=~|!~|!=|=)",
            "description": 'A label matcher: name="value", name!="value", name=~"regex" or '
            'name!~"regex" (regular expressions match the whole value).',
        }
    ),
]
