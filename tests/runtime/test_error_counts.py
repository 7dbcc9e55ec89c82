"""`logs --errors`: which lines count as errors, and how messages are grouped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsplane.drivers.runtime.base import LogLine
from opsplane.runtime.logscan import as_data, count_errors, error_kind, normalise

T0 = datetime(2026, 1, 6, 8, 0, tzinfo=UTC)


def lines(*texts: str) -> list[LogLine]:
    return [LogLine(T0 + timedelta(seconds=i), "api", 0, "stderr", text) for i, text in enumerate(texts)]


@pytest.mark.parametrize(("text", "kind"), [
    ("Traceback (most recent call last):", "traceback"),
    ('10.0.0.7 - - [06/Jan/2026:08:00:01 +0000] "POST /api/orders HTTP/1.1" 502 157 "-" "curl"', "http_5xx"),
    ('{"method": "GET", "path": "/cart", "status": 503}', "http_5xx"),
    ("2026-01-06 08:00:01,120 ERROR checkout failed", "level"),
    ("[CRITICAL] disk full", "level"),
    ("ts=2026-01-06T08:00:01Z level=error msg=\"redis timeout\"", "level"),
    ('{"levelname": "ERROR", "message": "x"}', "level"),
    ("psycopg.OperationalError: connection refused", "exception"),
    ("Unhandled exception in request handler", "exception"),
])
def test_error_lines_are_recognised_by_kind(text: str, kind: str) -> None:
    assert error_kind(text) == kind


@pytest.mark.parametrize("text", [
    '127.0.0.1 - - [06/Jan/2026 08:00:01] "GET /health HTTP/1.1" 200 -',
    '127.0.0.1 - - [06/Jan/2026 08:00:01] "GET /orders/503 HTTP/1.1" 404 -',
    "processed 120 orders, errors=0",
    "error_rate 0.002",
    "INFO all good",
])
def test_ordinary_lines_do_not_count(text: str) -> None:
    assert error_kind(text) is None


def test_messages_differing_only_in_times_ids_and_addresses_are_grouped() -> None:
    first = '10.0.0.7 - - [06/Jan/2026:08:00:01 +0000] "GET /orders/1234 HTTP/1.1" 500 12'
    second = '10.0.0.9 - - [06/Jan/2026:09:13:44 +0000] "GET /orders/98 HTTP/1.1" 500 12'

    assert normalise(first) == normalise(second) == '<ip> - - [<time>] "GET /orders/<n> HTTP/1.1" 500 12'
    assert normalise("order 550e8400-e29b-41d4-a716-446655440000 failed at 2026-01-06T08:00:01Z") == \
        "order <id> failed at <time>"


def test_failed_requests_differing_only_in_how_long_they_took_are_one_message() -> None:
    found = count_errors("orders", lines(
        '2026-01-06 08:00:01,120 shop.requests ERROR "POST /checkout HTTP/1.1" 502 in 13 ms: payments down',
        '2026-01-06 08:00:02,480 shop.requests ERROR "POST /checkout HTTP/1.1" 502 in 7 ms: payments down',
        "2026-01-06 08:00:03,001 worker ERROR gave up after 2.5s",
        "2026-01-06 08:00:04,001 worker ERROR gave up after 10 s",
    ))

    assert [(m.message, m.count) for m in found.top(3)] == [
        ('<time> shop.requests ERROR "POST /checkout HTTP/1.1" 502 in <duration>: payments down', 2),
        ("<time> worker ERROR gave up after <duration>", 2),
    ]
    assert dict(found.kinds) == {"http_5xx": 2, "level": 2}


def test_count_by_kind_with_the_most_frequent_message_first() -> None:
    found = count_errors("api", lines(
        "ERROR payment 1001 declined",
        "INFO ok",
        "ERROR payment 1002 declined",
        "Traceback (most recent call last):",
        "ERROR payment 1003 declined",
        "ValueError: bad amount",
    ))

    assert found.errors == 5
    assert dict(found.kinds) == {"level": 3, "traceback": 1, "exception": 1}
    top = found.top(2)
    assert [(m.message, m.count) for m in top] == [("ERROR payment <n> declined", 3),
                                                    ("Traceback (most recent call last):", 1)]
    assert top[0].example == "ERROR payment 1001 declined"
    assert top[0].last_seen == T0 + timedelta(seconds=4)


def test_report_data_puts_the_busiest_service_first_and_totals() -> None:
    quiet = count_errors("web", lines("INFO fine"))
    busy = count_errors("api", lines("ERROR a", "ERROR b"))

    data = as_data([quiet, busy], since=T0, top=1)

    assert data["since"] == T0.isoformat() and data["total"] == 2
    assert [s["service"] for s in data["services"]] == ["api", "web"]
    assert data["services"][0]["kinds"] == {"level": 2}
    assert len(data["services"][0]["top"]) == 1
    assert data["services"][1] == {"service": "web", "errors": 0, "kinds": {}, "top": []}
