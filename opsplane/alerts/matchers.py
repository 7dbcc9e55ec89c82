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
LABEL_NAME = re.compile(rf"{_LABEL}\Z")
_SPACE = r"[ \t\n\r\f]*"  # Alertmanager's (Go's) \s: ASCII whitespace only
_MATCHER = re.compile(rf"{_SPACE}({_LABEL}){_SPACE}(=~|!~|!=|=){_SPACE}(.*?){_SPACE}", re.DOTALL)
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
"""The only escapes in a value (OpenMetrics'); a backslash before anything else is itself."""
_ESCAPE_STARTS = ("", "\\", '"', "n", "\n")


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
        if not LABEL_NAME.match(self.name):
            raise ValueError(f"invalid label name {self.name!r} in a matcher")
        object.__setattr__(self, "op", MatchOp(self.op))
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
        """The matcher as `parse_matcher` (and Alertmanager) reads it back, the value quoted.
        A backslash is doubled only where it would otherwise be read as part of an escape,
        so `instance=~"web-\\d+"` is written as it was typed."""
        return f'{self.name}{self.op.value}"{_escape(self.value)}"'


def _escape(value: str) -> str:
    out = []
    for index, char in enumerate(value):
        if char == "\\":
            # Doubled when what follows it, once written, would make an escape with it (or
            # nothing follows and it would escape the closing quote).
            following = value[index + 1:index + 2]
            out.append("\\\\" if following in _ESCAPE_STARTS else "\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        else:
            out.append(char)
    return "".join(out)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


def parse_matcher(text: str) -> Matcher:
    """A matcher from `name="value"`, read as Alertmanager reads it; ValueError says what is
    wrong. Quotes around the value are optional. In the value `\\\\`, `\\"` and `\\n` are a
    backslash, a double quote and a line feed; any other backslash is kept as it is, so
    `instance=~"web-\\d+"` is the regular expression `web-\\d+`."""
    match = _MATCHER.fullmatch(text)
    if not match:
        raise ValueError(
            f"cannot read matcher {text!r}: write label, operator (=, !=, =~, !~) and value, "
            'such as severity="P0" or service=~"orders|payments"'
        )
    name, op, raw = match.groups()
    return Matcher(name, MatchOp(op), _unquote(raw))


def _unquote(raw: str) -> str:
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    value: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and index + 1 < len(body):
            following = body[index + 1]
            value.append(_ESCAPES.get(following, char + following))
            index += 2
            continue
        if char == '"':
            if not (quoted and index == len(body) - 1):
                raise ValueError(f"matcher value {raw!r} has an unescaped double quote inside it; "
                                 'write \\" for a double quote in a value')
            return "".join(value)
        value.append(char)  # a backslash at the very end of an unquoted value is itself
        index += 1
    if quoted and body.endswith('\\"'):
        raise ValueError(f"the closing quote of matcher value {raw!r} is escaped by the backslash "
                         "before it; write \\\\ for a backslash at the end of a value")
    if quoted:
        raise ValueError(f"matcher value {raw!r} opens a double quote that it does not close")
    return "".join(value)


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
