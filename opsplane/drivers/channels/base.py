"""The channel interface: what a delivery attempt returns, and the HTTP sending most channels share.

A channel is two halves. Formatting (`Notification` -> request) is a pure function in each
channel's module, unit-tested without a network. Sending is `ChannelDriver.send`, which never
raises for a receiver's failure: it returns a `SendResult` the outbox acts on (delivered, try
again later, or failed for good).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Protocol

import httpx

from opsplane.notify.models import Notification


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # timeouts, connection errors, 429, 5xx: the receiver may take it later
    FAILED = "failed"  # any other refusal: sending it again would be refused again


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    status: int | None = None
    retry_after: float | None = None  # seconds the receiver asked us to wait (429, 503)

    @property
    def throttled(self) -> bool:
        """HTTP 429: the receiver asks the sender to slow down. It throttles what identifies us
        (a PagerDuty routing key, a Slack webhook, a gateway's API account), and each of those
        is one channel, so the whole channel waits, not only this message."""
        return self.status == 429


@dataclass(frozen=True)
class HttpRequest:
    """A POST a channel sends; it may carry a secret (in the URL or the body), so it is never logged."""

    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class ChannelDriver(Protocol):
    """One configured channel, secrets resolved, ready to send."""

    name: str

    def send(self, notification: Notification) -> SendResult:
        """Format and deliver one notification; failures come back as a SendResult."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every secret value replaced, for details that reach the event log. A secret
    URL's path, path segments, query and password are replaced too, wherever they appear alone
    (a receiver's error page that quotes the path it was posted to), and so is anything that
    looks like a credential in a URL (`opsplane.security.redact`)."""
    from opsplane.security.redact import redact as redact_urls

    parts = {part for secret in secrets if secret for part in _secret_parts(secret)}
    for part in sorted(parts, key=len, reverse=True):
        text = text.replace(part, "***")
    return redact_urls(text)


def _secret_parts(secret: str) -> list[str]:
    """The secret, and the parts of a secret URL that identify it on their own."""
    from urllib.parse import urlsplit

    parts = [secret]
    if "://" in secret:
        url = urlsplit(secret)
        if len(url.path) > 1:
            parts.append(url.path)
            # identifiers and tokens, not words such as "services" or "webhooks"
            parts += [segment for segment in url.path.split("/")
                      if len(segment) >= 6 and not re.fullmatch(r"[a-z-]+", segment)]
        parts += [p for p in (url.query, url.password) if p]
    return parts


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    from datetime import UTC, datetime

    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def classify_status(status: int, retry_after: str | None = None, body: str = "") -> SendResult:
    """What an HTTP status means for the outbox: 2xx delivered; 408, 429 and 5xx again later
    (PagerDuty documents exactly these as retryable); any other 4xx failed for good."""
    snippet = body.strip().replace("\n", " ")[:200]
    detail = f"HTTP {status}" + (f": {snippet}" if snippet else "")
    if 200 <= status < 300:
        return SendResult(Outcome.DELIVERED, detail, status)
    if status in (408, 429) or status >= 500:
        return SendResult(Outcome.RETRY, detail, status, parse_retry_after(retry_after))
    return SendResult(Outcome.FAILED, detail, status)


class HttpSender:
    """POSTs requests over one pooled client; a failure of the receiver becomes a SendResult."""

    def __init__(self, timeout: float, *, transport: httpx.BaseTransport | None = None) -> None:
        self._client = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def post(self, request: HttpRequest, *, secrets: tuple[str, ...] = ()) -> SendResult:
        try:
            response = self._client.post(request.url, content=request.body, headers=request.headers)
        except httpx.TimeoutException:
            return SendResult(Outcome.RETRY, "timed out")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            # the URL may be the secret itself (Slack): say what is wrong, not what it is
            return SendResult(Outcome.FAILED, "the channel's URL is not a valid http(s) URL")
        except httpx.TransportError as exc:
            # httpx's messages name the host at most, never the path or the body; redact anyway
            return SendResult(Outcome.RETRY, redact(f"{type(exc).__name__}: {exc}", secrets))
        result = classify_status(response.status_code, response.headers.get("retry-after"),
                                 response.text)
        return SendResult(result.outcome, redact(result.detail, secrets), result.status,
                          result.retry_after)

    def close(self) -> None:
        self._client.close()
