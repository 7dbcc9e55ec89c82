"""Generic webhooks: the notification as JSON, signed with HMAC-SHA256 over timestamp and body.

The receiver recomputes `HMAC-SHA256(secret, "<timestamp>.<body>")` and compares it with
`X-Opsplane-Signature: v1=<hex>`; the timestamp lets it refuse old replays. `Idempotency-Key`
is the notification's key, the same on every retry, so a receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from opsplane.clock import Clock, SystemClock
from opsplane.drivers.channels.base import HttpRequest, HttpSender, SendResult
from opsplane.notify.models import Notification, WebhookChannel

SIGNATURE_HEADER = "X-Opsplane-Signature"
TIMESTAMP_HEADER = "X-Opsplane-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float,
           tolerance: float = 300.0) -> bool:
    """True when `signature` is ours for this body and the timestamp is within `tolerance`."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def webhook_request(notification: Notification, *, url: str, secret: str | None,
                    timestamp: int) -> HttpRequest:
    body = json.dumps(notification.as_payload(), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": notification.key,
               TIMESTAMP_HEADER: str(timestamp)}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    return HttpRequest(url, body, headers)


class WebhookDriver:
    def __init__(self, name: str, settings: WebhookChannel, *, secret: str | None,
                 clock: Clock | None = None) -> None:
        self.name = name
        self._url = settings.url
        self._secret = secret
        self._clock = clock or SystemClock()
        self._http = HttpSender(settings.timeout)

    def send(self, notification: Notification) -> SendResult:
        timestamp = int(self._clock.now().timestamp())
        request = webhook_request(notification, url=self._url, secret=self._secret, timestamp=timestamp)
        return self._http.post(request, secrets=(self._secret,) if self._secret else ())

    def close(self) -> None:
        self._http.close()
