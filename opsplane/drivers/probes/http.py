"""HTTP(S) probe: one request on a fresh connection, judged by status, latency and body.

Probing ten thousand endpoints every ten seconds from one core rules out a general-purpose
client: this is a minimal HTTP/1.1 exchange on an `asyncio.Protocol`. The request bytes and
the TLS context are built once per probe; each run opens one connection (as the Prometheus
blackbox exporter does), sends `Connection: close`, reads the status line, the headers and
at most 1 MiB of body, and never follows redirects.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import ssl
import sys
import time
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from opsplane.config.models import HttpCheck, JsonCondition
from opsplane.drivers.probes.base import ProbeFailed, format_elapsed, redact
from opsplane.drivers.probes.resolve import Resolver, default_resolver
from opsplane.health.models import Metric, ProbeResult, State, Threshold, worst
from opsplane.health.targets import CheckTarget

USER_AGENT = "opsplane-probe/0.1"
MAX_BODY = 1024 * 1024
_MAX_HEAD = 64 * 1024
_MAX_CHUNK_LINE = 4096
_NO_BODY_STATUS = frozenset({204, 304})


@dataclass(frozen=True)
class HttpResponse:
    """What came back: status, body bytes read (at most MAX_BODY), and the body when kept;
    `finished` is the perf_counter() reading when its last byte was read."""

    status: int
    size: int
    body: bytes | None
    truncated: bool
    finished: float = 0.0


class HttpProbe:
    """Judges one URL by the rules of its HttpCheck.

    `bearer_token` is the resolved secret; it is sent, never shown in a reason.
    """

    # `serve` keeps one per check for its whole life.
    __slots__ = ("_head_only", "_keep_body", "_latency", "_problem", "_request", "_secrets",
                 "_ssl", "check", "host", "port", "resolver", "tls", "url")

    def __init__(
        self,
        url: str,
        check: HttpCheck,
        *,
        bearer_token: str | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.url = url
        self.resolver = resolver or default_resolver()
        self.check = check
        self._problem: str | None = None  # a configuration fault, reported on every run
        self._secrets = (bearer_token,) if bearer_token else ()
        parts = urlsplit(url)
        self.tls = parts.scheme == "https"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self._problem = f"cannot probe {url!r}: expected an http:// or https:// URL"
        self.host = sys.intern(parts.hostname or "")  # thousands of checks share a few hosts
        try:
            self.port = parts.port or (443 if self.tls else 80)
        except ValueError:
            self.port = 0
            self._problem = f"cannot probe {url!r}: the port is not a number"
        self._keep_body = check.body_contains is not None or check.json_field is not None
        self._head_only = check.method == "HEAD"
        self._request = b""
        self._ssl: ssl.SSLContext | None = None
        if self._problem is None:
            try:
                self._request = _request_bytes(check, parts, self.host, self.port, self.tls,
                                               bearer_token)
                if self.tls:
                    self._ssl = _client_context(check.verify_tls, check.ca_file)
            except ProbeFailed as exc:
                self._problem = exc.reason
        self._latency = Threshold(check.latency_warning, check.latency_critical)

    @property
    def address(self) -> str:
        return self.url

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    @classmethod
    def for_target(
        cls,
        target: CheckTarget,
        *,
        bearer_token: str | None = None,
        resolver: Resolver | None = None,
    ) -> HttpProbe:
        if not isinstance(target.check, HttpCheck) or target.url is None:
            raise TypeError(f"{target.id} is not an http check")
        return cls(target.url, target.check, bearer_token=bearer_token, resolver=resolver)

    async def probe(self) -> ProbeResult:
        """OK "HTTP 200 in 12 ms", else the broken rules of the worst state; metrics
        latency_ms, status and bytes."""
        if self._problem is not None:
            raise ProbeFailed(self._problem, State.UNKNOWN)
        # From just before the connect call to the protocol callback that read the last byte:
        # when many checks run at once, this task may resume much later than that.
        started = time.perf_counter()
        response = await self.fetch()
        return self.judge(response, (response.finished or time.perf_counter()) - started)

    async def fetch(self) -> HttpResponse:
        """One request/response exchange on a new connection."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[HttpResponse] = loop.create_future()
        transport: asyncio.Transport | None = None
        try:
            transport, _ = await self.resolver.connect(
                lambda: _Exchange(self._request, done, self._keep_body, self._head_only),
                self.host, self.port, ssl=self._ssl,
            )
            response = await done
        except BaseException:
            if transport is not None:
                transport.abort()  # timed out or failed: no polite TLS goodbye to wait for
            raise
        transport.close()
        return response

    def judge(self, response: HttpResponse, elapsed: float) -> ProbeResult:
        """The state and reason for `response` received after `elapsed` seconds."""
        check = self.check
        took = format_elapsed(elapsed)
        problems: list[tuple[State, str]] = []
        accepted = check.expect_status
        if (response.status not in accepted) if accepted else not 200 <= response.status < 400:
            expected = f", expected {', '.join(map(str, accepted))}" if accepted else ""
            problems.append((State.CRITICAL, f"HTTP {response.status} in {took}{expected}"))
        else:
            problems.extend(self._body_problems(response))
        latency_state = self._latency.judge(elapsed)
        if latency_state is not State.OK:
            critical = latency_state is State.CRITICAL
            limit = check.latency_critical if critical else check.latency_warning
            problems.append((latency_state, f"HTTP {response.status} in {took}, slower than "
                                            f"{format_elapsed(limit or 0)}"))
        metrics: dict[str, Metric] = {"latency_ms": round(elapsed * 1000, 3),
                                   "status": response.status, "bytes": response.size}
        if not problems:
            return ProbeResult(State.OK, f"HTTP {response.status} in {took}", elapsed, metrics)
        state = worst(s for s, _ in problems)
        reason = "; ".join(r for s, r in problems if s is state)
        return ProbeResult(state, reason, elapsed, metrics)

    def _body_problems(self, response: HttpResponse) -> list[tuple[State, str]]:
        check = self.check
        body = response.body or b""
        problems: list[tuple[State, str]] = []
        if check.body_contains is not None and check.body_contains.encode() not in body:
            cut = " (first 1 MiB)" if response.truncated else ""
            problems.append((State.CRITICAL, f"body{cut} does not contain {check.body_contains!r}"))
        if check.json_field is not None:
            failure = _json_failure(body, check.json_field, response.truncated, self._secrets)
            if failure:
                problems.append((State.CRITICAL, failure))
        return problems


# --- the request ---------------------------------------------------------------------------


def _request_bytes(
    check: HttpCheck, parts: Any, host: str, port: int, tls: bool, bearer_token: str | None
) -> bytes:
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    authority = f"[{host}]" if ":" in host else host
    if port != (443 if tls else 80):
        authority += f":{port}"
    headers = {"host": ("Host", authority), "user-agent": ("User-Agent", USER_AGENT),
               "accept": ("Accept", "*/*")}
    for name, value in check.headers.items():
        headers[name.lower()] = (name, value)
    if bearer_token is not None:
        headers["authorization"] = ("Authorization", f"Bearer {bearer_token}")
    # Our framing rules are fixed: one request, no body, then the server closes.
    headers["connection"] = ("Connection", "close")
    if check.method == "POST":
        headers["content-length"] = ("Content-Length", "0")
    lines = [f"{check.method} {target} HTTP/1.1"]
    for key, (name, value) in headers.items():
        if any(c in name + value for c in "\r\n\0"):
            shown = "Authorization" if key == "authorization" else name
            raise ProbeFailed(f"header {shown} contains a line break: fix the check's headers")
        lines.append(f"{name}: {value}")
    text = "\r\n".join(lines) + "\r\n\r\n"
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _client_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    stamp = None
    if ca_file is not None:
        try:
            stamp = os.stat(ca_file).st_mtime_ns
        except OSError as exc:
            raise ProbeFailed(f"CA file {ca_file} cannot be read: {exc.strerror}") from None
    return _cached_context(verify, ca_file, stamp)


# Loading the system trust store costs milliseconds; probes are rebuilt from configuration
# often, so identical contexts are shared (a changed CA file has a new mtime, hence a new one).
@functools.lru_cache(maxsize=64)
def _cached_context(verify: bool, ca_file: str | None, _stamp: int | None) -> ssl.SSLContext:
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ProbeFailed(f"CA file {ca_file} is not a PEM certificate bundle: {exc}") from None


# --- the response ----------------------------------------------------------------------------


class _Exchange(asyncio.Protocol):
    """Sends the request on connect, then parses one response into `done`."""

    def __init__(
        self, request: bytes, done: asyncio.Future[HttpResponse], keep_body: bool, head_only: bool
    ) -> None:
        self._request = request
        self._done = done
        self._keep_body = keep_body
        self._head_only = head_only
        self._transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._status = 0  # 0 until the status line and headers are in
        self._framing = ""  # "length", "chunked" or "close"
        self._remaining = 0  # body bytes still expected ("length") or in this chunk ("chunked")
        self._chunk_state = "size"  # chunked: "size", "data" or "crlf"
        self._pending = bytearray()  # chunked: framing bytes not yet parsed
        self._body = bytearray()
        self._size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._done.done():
            return
        if self._status:
            self._feed_body(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        while end >= 0:
            rest = bytes(self._head[end + 4:])
            if not self._parse_head(bytes(self._head[:end])):  # an interim 1xx: next head
                self._head = bytearray(rest)
                end = self._head.find(b"\r\n\r\n")
                continue
            self._head = bytearray()
            if self._done.done():  # the head was malformed
                return
            if self._framing == "none":
                self._finish()
            elif rest:
                self._feed_body(rest)
            return
        if len(self._head) > _MAX_HEAD:
            self._fail(ProbeFailed("response headers larger than 64 KiB"))

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self._done.done():
            self._done.set_exception(exc)
        self._ended()

    def _ended(self) -> None:
        if self._done.done():
            return
        if not self._status:
            said = "an incomplete" if self._head else "no"
            self._fail(ProbeFailed(f"connection closed with {said} response"))
        elif self._framing == "close":
            self._finish()
        else:
            self._fail(ProbeFailed(f"HTTP {self._status}: connection closed in the middle "
                                   f"of the body after {self._size} bytes"))

    def _parse_head(self, head: bytes) -> bool:
        """Reads status and framing; False for an interim (1xx) response to skip."""
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/") or not code.isdigit():
            self._fail(ProbeFailed(f"not an HTTP response: {lines[0][:60]!r}"))
            return True
        status = int(code)
        if 100 <= status < 200 and status != 101:
            return False
        self._status = status
        length: int | None = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    self._fail(ProbeFailed(f"HTTP {status}: invalid Content-Length {value!r}"))
                    return True
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
        if self._head_only or status in _NO_BODY_STATUS or status == 101:
            self._framing = "none"
        elif chunked:  # wins over Content-Length, as RFC 9112 says
            self._framing = "chunked"
        elif length is not None:
            self._framing = "length"
            self._remaining = length
            if length == 0:
                self._framing = "none"
        else:
            self._framing = "close"
        return True

    def _feed_body(self, data: bytes) -> None:
        if self._framing == "chunked":
            self._feed_chunked(data)
            return
        if self._framing == "length":
            data = data[: self._remaining]
            self._remaining -= len(data)
        self._take(data)
        if not self._done.done() and self._framing == "length" and self._remaining <= 0:
            self._finish()

    def _feed_chunked(self, data: bytes) -> None:
        pending = self._pending
        pending += data
        while pending and not self._done.done():
            if self._chunk_state == "size":
                end = pending.find(b"\r\n")
                if end < 0:
                    if len(pending) > _MAX_CHUNK_LINE:
                        self._fail(ProbeFailed(f"HTTP {self._status}: malformed chunked body"))
                    return
                size_text = bytes(pending[:end]).split(b";", 1)[0].strip()
                del pending[: end + 2]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    self._fail(ProbeFailed(f"HTTP {self._status}: malformed chunked body"))
                    return
                if size == 0:  # the last chunk; trailers do not matter to us
                    self._finish()
                    return
                self._remaining, self._chunk_state = size, "data"
            elif self._chunk_state == "data":
                piece = bytes(pending[: self._remaining])
                del pending[: len(piece)]
                self._remaining -= len(piece)
                self._take(piece)
                if self._remaining == 0:
                    self._chunk_state = "crlf"
            else:
                if len(pending) < 2:
                    return
                del pending[:2]
                self._chunk_state = "size"

    def _take(self, data: bytes) -> None:
        room = MAX_BODY - self._size
        if len(data) >= room:
            data = data[:room]
        self._size += len(data)
        if self._keep_body:
            self._body += data
        if self._size >= MAX_BODY:
            self._finish(truncated=True)

    def _finish(self, *, truncated: bool = False) -> None:
        if self._done.done():
            return
        body = bytes(self._body) if self._keep_body else None
        self._done.set_result(HttpResponse(self._status, self._size, body, truncated,
                                           time.perf_counter()))
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: BaseException) -> None:
        if not self._done.done():
            self._done.set_exception(exc)
        if self._transport is not None:
            self._transport.abort()


# --- JSON conditions --------------------------------------------------------------------------

_MISSING = object()


def _json_failure(
    body: bytes, condition: JsonCondition, truncated: bool, secrets: tuple[str, ...] = ()
) -> str | None:
    """Why `body` fails `condition`, or None when it holds; `secrets` are never quoted."""
    try:
        document = json.loads(body)
    except ValueError:
        cut = " (cut at 1 MiB)" if truncated else ""
        return f"body is not JSON{cut}, expected {condition.path} {condition.op} " \
               f"{_show(condition.value)}"
    actual = json_path(document, condition.path)
    expected = f"expected {condition.op} {_show(condition.value)}"
    if actual is _MISSING:
        return f"json {condition.path} is missing, {expected}"
    if not json_holds(actual, condition.op, condition.value):
        return f"json {condition.path}: {expected}, got {_show(actual, secrets)}"
    return None


def json_path(document: Any, path: str) -> Any:
    """The value at dotted `path` ("checks.db.status", "items.0.id"); a private sentinel
    object when absent."""
    value = document
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and _index(step, len(value)) is not None:
            value = value[int(step)]
        else:
            return _MISSING
    return value


def _index(step: str, length: int) -> int | None:
    if not step.lstrip("-").isdigit():
        return None
    index = int(step)
    return index if -length <= index < length else None


def json_holds(actual: Any, op: str, expected: Any) -> bool:
    """Whether `actual <op> expected`; JSON booleans are never equal to numbers, and order
    comparisons hold only between two numbers or two strings."""
    if op == "in":
        options = expected if isinstance(expected, list) else [expected]
        return any(_same(actual, option) for option in options)
    if op == "==":
        return _same(actual, expected)
    if op == "!=":
        return not _same(actual, expected)
    both_numbers = all(isinstance(v, int | float) and not isinstance(v, bool)
                       for v in (actual, expected))
    both_strings = isinstance(actual, str) and isinstance(expected, str)
    if not (both_numbers or both_strings):
        return False
    if op == "<":
        return bool(actual < expected)
    if op == "<=":
        return bool(actual <= expected)
    if op == ">":
        return bool(actual > expected)
    return bool(actual >= expected)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return bool(a == b)


def _show(value: Any, secrets: tuple[str, ...] = ()) -> str:
    # Redacted before the cut (a secret cut in two would not be found), as written in JSON too.
    written = tuple(json.dumps(secret, ensure_ascii=False)[1:-1] for secret in secrets)
    text = redact(json.dumps(value, ensure_ascii=False, default=str), secrets + written)
    return text if len(text) <= 80 else text[:77] + "..."
