"""The one ASGI middleware in front of every shop app: it names the route, applies the faults
in force and what the release does to the route (`shop.releases`), names the release on every
answer (`X-Version`), records the answer in the metrics and the error window, and logs every
request answered with a 5xx, with its cause.

Written against raw ASGI rather than BaseHTTPMiddleware: it sits on every request of a
benchmark, and the raw form adds no task and no body copy.

A failed request is one ERROR line of the `shop.requests` logger, the request line and
status first as an access log writes them, then the time taken and why:

    "POST /checkout HTTP/1.1" 502 in 14 ms: payments answered HTTP 500 (fault injected)

The cause is what the handler said with `note_failure` (a downstream service that failed and
how, an unavailable dependency, a simulated provider error), the fault that was injected, the
release's own failure, or the exception that escaped the handler (then with its traceback).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shop.faults import EXEMPT_ROUTES, FaultInjector
from shop.releases import ReleaseBehaviour
from shop.telemetry import ClientTally, ErrorWindow, ShopMetrics

UNMATCHED = "unmatched"
VERSION_HEADER = b"x-version"
# Requests that do not count toward the error window (nor toward a pending crash).
OPERATIONAL_ROUTES = EXEMPT_ROUTES
_CAUSE = "shop.failure"  # where a handler leaves the cause of its failure, in the request's state
log = logging.getLogger("shop.requests")


def note_failure(request: Request, cause: str) -> None:
    """Say why this request is answered with a 5xx; the middleware logs it with the answer."""
    setattr(request.state, _CAUSE, cause)


class RouteNamer:
    """The route template (`/products/{product_id}`) a request path belongs to."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._static: dict[str, str] = {}
        self._templated: list[tuple[BaseRoute, str]] = []
        for route in routes:
            path = getattr(route, "path", None)
            if path is None:
                continue
            if "{" in path:
                self._templated.append((route, path))
            else:
                self._static[path] = path

    @property
    def templates(self) -> set[str]:
        return set(self._static) | {path for _, path in self._templated}

    def name(self, scope: Scope) -> str:
        found = self._static.get(scope["path"])
        if found is not None:
            return found
        partial = None
        for route, path in self._templated:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return path
            if match is Match.PARTIAL and partial is None:
                partial = path
        return partial or UNMATCHED


class ShopMiddleware:
    """Faults and the release's effects before the app, metrics after it."""

    def __init__(
        self, app: ASGIApp, *, namer: RouteNamer, metrics: ShopMetrics, faults: FaultInjector,
        errors: ErrorWindow, release: ReleaseBehaviour, clients: ClientTally | None = None,
    ) -> None:
        self.app = app
        self._namer = namer
        self._metrics = metrics
        self._faults = faults
        self._errors = errors
        self._release = release
        self._clients = clients  # the gateway's: requests per client address, in its log
        self._version_header = (VERSION_HEADER, release.name.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._namer.name(scope)
        # shared with the handler's request.state, even should something copy the scope
        scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500
        cause: str | None = None
        failure: BaseException | None = None
        answering = False
        faults = self._faults
        release = self._release
        version_header = self._version_header

        async def send_and_note(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status = message["status"]
                answering = True
                message = {**message, "headers": [*message.get("headers", ()), version_header]}
            await send(message)

        try:
            rules = faults.for_route(route)
            if rules is not None and rules.hang:
                await faults.wait_while_hung(route)
                rules = faults.for_route(route)
            if rules is not None and rules.latency_s:
                await asyncio.sleep(rules.latency_s)
            if delay := release.extra_delay(route):
                await asyncio.sleep(delay)
            if rules is not None and rules.error_ratio and faults.roll(rules.error_ratio):
                status = faults.plan.error_status
                cause = f"fault injected: {rules.error_ratio:.0%} of {route} requests fail"
                await _send_json(send, status, {"error": "fault injected", "route": route}, version_header)
            elif release.fails(route):
                status = 500
                cause = release.failure_cause(route)
                await _send_json(send, status, {"error": f"release {release.name} failed this request",
                                                "route": route}, version_header)
            else:
                await self.app(scope, receive, send_and_note)
        except Exception as exc:
            failure = exc
            cause = f"unhandled {type(exc).__name__}: {exc}"
            if answering:
                raise  # the answer has begun: the server closes the connection
            status = 500
            await _send_json(send, status, {"error": "internal error", "route": route}, version_header)
        finally:
            elapsed = time.perf_counter() - started
            self._metrics.observe_request(route, scope["method"], status, elapsed)
            if self._clients is not None and route not in OPERATIONAL_ROUTES:
                peer = scope.get("client")
                self._clients.record(peer[0] if peer else None, status)
            if route not in OPERATIONAL_ROUTES:
                self._errors.record(status >= 500)
                faults.answered()
            if status >= 500:
                _log_failure(scope, route, status, elapsed, cause, failure)


def _log_failure(scope: Scope, route: str, status: int, elapsed: float, cause: str | None,
                 failure: BaseException | None) -> None:
    path = scope["path"]
    said = cause or scope["state"].get(_CAUSE) or "no cause given by the handler"
    where = "" if route in (path, UNMATCHED) else f" (route {route})"
    log.error('"%s %s HTTP/%s" %d in %.0f ms%s: %s', scope["method"], path, scope.get("http_version", "1.1"),
              status, elapsed * 1000, where, said, exc_info=failure)


async def _send_json(send: Send, status: int, body: dict[str, Any],
                     version_header: tuple[bytes, bytes]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
        version_header,
    ]})
    await send({"type": "http.response.body", "body": payload})
