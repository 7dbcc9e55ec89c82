"""The one ASGI middleware in front of every shop app: it names the route, applies the faults
in force, and records the answer in the metrics and the error window.

Written against raw ASGI rather than BaseHTTPMiddleware: it sits on every request of a
benchmark, and the raw form adds no task and no body copy.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shop.faults import EXEMPT_ROUTES, FaultInjector
from shop.telemetry import ErrorWindow, ShopMetrics

UNMATCHED = "unmatched"
# Requests that do not count toward the error window (nor toward a pending crash).
OPERATIONAL_ROUTES = EXEMPT_ROUTES


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
    """Faults before the app, metrics after it."""

    def __init__(
        self, app: ASGIApp, *, namer: RouteNamer, metrics: ShopMetrics, faults: FaultInjector,
        errors: ErrorWindow,
    ) -> None:
        self.app = app
        self._namer = namer
        self._metrics = metrics
        self._faults = faults
        self._errors = errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self._namer.name(scope)
        started = time.perf_counter()
        status = 500
        faults = self._faults

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            rules = faults.for_route(route)
            if rules is not None and rules.hang:
                await faults.wait_while_hung(route)
                rules = faults.for_route(route)
            if rules is not None and rules.latency_s:
                await asyncio.sleep(rules.latency_s)
            if rules is not None and rules.error_ratio and faults.roll(rules.error_ratio):
                status = faults.plan.error_status
                await _send_json(send, status, {"error": "fault injected", "route": route})
            else:
                await self.app(scope, receive, send_and_note)
        finally:
            self._metrics.observe_request(route, scope["method"], status, time.perf_counter() - started)
            if route not in OPERATIONAL_ROUTES:
                self._errors.record(status >= 500)
                faults.answered()


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
    ]})
    await send({"type": "http.response.body", "body": payload})
