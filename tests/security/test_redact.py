"""Secret-looking parts of URLs are named without being repeated, and replaced."""

from __future__ import annotations

import pytest

from opsplane.security.redact import findings, redact


@pytest.mark.parametrize(("text", "secret", "kept"), [
    ("connect to postgresql://shop:pa55word@db.internal:5432/shop failed", "pa55word",
     "postgresql://shop:***@db.internal:5432/shop"),
    ("POST https://hooks.slack.com/services/T01/B02/abcDEF123 answered 404", "T01/B02/abcDEF123",
     "https://hooks.slack.com/services/*** answered 404"),
    ("GET https://api.example.com/v1/send?channel=ops&token=tok-991&x=1", "tok-991",
     "?channel=ops&token=***&x=1"),
])
def test_secret_parts_are_found_and_replaced(text: str, secret: str, kept: str) -> None:
    assert findings(text)
    assert all(secret not in what for what in findings(text))
    assert secret not in redact(text) and kept in redact(text)


def test_ordinary_urls_are_left_as_they_are() -> None:
    for text in ("http://127.0.0.1:8200/health", "postgresql://shop@db/shop", "https://example.com/?page=2"):
        assert findings(text) == [] and redact(text) == text


def test_a_channel_error_quoting_part_of_its_secret_url_is_redacted() -> None:
    from opsplane.drivers.channels.base import redact as redact_detail

    url = "https://hooks.slack.com/services/T01ABC/B02DEF/xq7Tt9sPzz"
    detail = "HTTP 404: no_service: nothing is posted at /services/T01ABC/B02DEF/xq7Tt9sPzz (xq7Tt9sPzz)"
    cleaned = redact_detail(detail, (url,))
    assert "xq7Tt9sPzz" not in cleaned and "T01ABC" not in cleaned
    assert cleaned.startswith("HTTP 404: no_service")
