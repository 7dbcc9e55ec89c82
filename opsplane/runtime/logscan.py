"""Error lines in service logs, counted by service with their most frequent messages.

The morning checklist's `docker compose logs --since=24h | grep -i error | wc -l`, made a
little sharper. A line counts once, as the first of these kinds it matches:

- `traceback`: `Traceback (most recent call last)`, the start of a Python traceback;
- `http_5xx`: an access-log line answering 5xx, in common/combined log format
  (`"GET /path HTTP/1.1" 503 ...`) or as a JSON field (`"status": 503`);
- `level`: a log level of ERROR, CRITICAL, FATAL or PANIC, as a word in capitals
  (`ERROR`, `[CRITICAL]`) or as `level=error` / `"level": "error"` in any case;
- `exception`: a word ending in Error or Exception followed by a colon
  (`ValueError: ...`, `java.lang.IllegalStateException:`) or the word exception in any case.

Unlike `grep -i error`, words such as `errors=0`, `error_rate` or `terrorist` do not count.
Messages are grouped after replacing what changes from one occurrence to the next (times,
durations, addresses, ids, long numbers) so the top list shows kinds of problem, not single
lines.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsplane.drivers.runtime.base import LogLine

ERROR_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("http_5xx", re.compile(r'"[A-Z]+ \S+ HTTP/\d(?:\.\d)?" 5\d\d\b|"status"\s*:\s*"?5\d\d\b')),
    ("level", re.compile(
        r"\b(?:ERROR|CRITICAL|FATAL|PANIC)\b"
        r"|(?i:\blevel(?:name)?\"?\s*[=:]\s*\"?(?:error|critical|fatal|panic)\b)"
    )),
    ("exception", re.compile(r"\b[\w.]*(?:Error|Exception)\b:|(?i:\bexception\b)")),
)

_VARYING: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"), "<time>"),
    (re.compile(r"\[\d\d/\w{3}/\d{4}[ :]\d\d:\d\d:\d\d(?: [+-]\d{4})?\]"), "[<time>]"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"/\d+(?=[/?\s\"]|$)"), "/<n>"),
    (re.compile(r"(?<![\w.])\d+(?:\.\d+)? ?(?:ms|us|µs|s)\b"), "<duration>"),
    (re.compile(r"\b\d{4,}\b"), "<n>"),
)
_MESSAGE_WIDTH = 160


def error_kind(text: str) -> str | None:
    """The kind of error `text` reports (see the module's list), or None."""
    for kind, pattern in ERROR_PATTERNS:
        if pattern.search(text):
            return kind
    return None


def normalise(text: str) -> str:
    """`text` with times, ids, addresses and long numbers replaced, for grouping."""
    for pattern, replacement in _VARYING:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    return text[:_MESSAGE_WIDTH]


@dataclass
class Message:
    message: str
    count: int
    example: str
    last_seen: datetime


@dataclass
class ServiceErrors:
    service: str
    errors: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    messages: dict[str, Message] = field(default_factory=dict)

    def add(self, line: LogLine, kind: str) -> None:
        self.errors += 1
        self.kinds[kind] += 1
        key = normalise(line.text)
        seen = self.messages.get(key)
        if seen is None:
            self.messages[key] = Message(key, 1, line.text[:_MESSAGE_WIDTH * 2], line.ts)
        else:
            seen.count += 1
            seen.last_seen = max(seen.last_seen, line.ts)

    def top(self, limit: int) -> list[Message]:
        return sorted(self.messages.values(), key=lambda m: (-m.count, m.message))[:limit]


def count_errors(service: str, lines: Iterable[LogLine]) -> ServiceErrors:
    """Error lines of one service's log lines, by kind and by normalised message."""
    found = ServiceErrors(service)
    for line in lines:
        kind = error_kind(line.text)
        if kind is not None:
            found.add(line, kind)
    return found


def as_data(results: list[ServiceErrors], *, since: datetime | None, top: int = 5) -> dict[str, Any]:
    """The error report as JSON-ready data, busiest service first."""
    ordered = sorted(results, key=lambda r: (-r.errors, r.service))
    return {
        "since": since.isoformat() if since else None,
        "total": sum(r.errors for r in results),
        "services": [
            {
                "service": r.service,
                "errors": r.errors,
                "kinds": dict(sorted(r.kinds.items())),
                "top": [{"message": m.message, "count": m.count, "example": m.example,
                         "last_seen": m.last_seen.isoformat()} for m in r.top(top)],
            }
            for r in ordered
        ],
    }
