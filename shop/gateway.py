"""The gateway: the shop's public API under /api, each route passed on to the service that
owns it (bodies travel as bytes; the owning service validates them), and the shoppers' sign-in.

`POST /login` checks a username and password against the demo's shoppers and answers 200
with a session token or 401. Each attempt is counted (`shop_logins_total{result}`) and logged
as one line of the `shop.logins` logger with the client's address and the account (`?` for a
name that is no account), never the password:

    login result=failed user=alice client=10.0.0.7

The demo's shoppers share one password, `SHOP_DEMO_PASSWORD` (default `shop-demo`); the
traffic generator signs in with it.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from shop.httpclient import HttpAnswer
from shop.middleware import note_failure
from shop.service import ServiceSpec, ShopRuntime

# public route template -> (service, its route template); {name} segments carry over.
PUBLIC_ROUTES: tuple[tuple[str, str, str, str], ...] = (
    ("GET", "/api/products", "catalog", "/products"),
    ("GET", "/api/products/{product_id}", "catalog", "/products/{product_id}"),
    ("GET", "/api/search", "catalog", "/search"),
    ("POST", "/api/carts", "orders", "/carts"),
    ("GET", "/api/carts/{cart_id}", "orders", "/carts/{cart_id}"),
    ("POST", "/api/carts/{cart_id}/items", "orders", "/carts/{cart_id}/items"),
    ("POST", "/api/checkout", "orders", "/checkout"),
    ("GET", "/api/orders/{order_id}", "orders", "/orders/{order_id}"),
)
_PASSED_HEADERS = ("content-type", "accept")
DEMO_USERS = ("alice", "bob", "carol", "dave", "erin")
DEFAULT_DEMO_PASSWORD = "shop-demo"
LOGIN_RESULTS = ("ok", "failed", "invalid")
logins_log = logging.getLogger("shop.logins")


def gateway_routes(runtime: ShopRuntime) -> APIRouter:
    router = APIRouter(tags=["public API"])
    downstreams = runtime.require_downstreams()

    def forward(service: str, target: str) -> object:
        async def endpoint(request: Request) -> Response:
            path = target.format(**request.path_params) if request.path_params else target
            headers = {name: value for name in _PASSED_HEADERS if (value := request.headers.get(name))}
            answer = await downstreams.request(
                service, request.method, path, params=request.scope["query_string"],
                content=await request.body() if request.method != "GET" else None, headers=headers,
            )
            if answer.status_code >= 500:
                note_failure(request, f"{service} answered HTTP {answer.status_code}{_reason(answer)}")
            return Response(answer.content, status_code=answer.status_code,
                            media_type=answer.headers.get("content-type"))
        return endpoint

    for method, public, service, target in PUBLIC_ROUTES:
        router.add_api_route(public, forward(service, target), methods=[method],  # type: ignore[arg-type]
                             name=f"{method.lower()} {public}")
    router.add_api_route("/login", login_route(runtime), methods=["POST"], name="post /login")
    return router


def login_route(runtime: ShopRuntime) -> Callable[[Request], Awaitable[Response]]:
    logins = runtime.counter("shop_logins", "Sign-in attempts at the gateway, by result.", "result",
                             LOGIN_RESULTS)
    password = os.environ.get("SHOP_DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD

    async def login(request: Request) -> Response:
        user, given = _credentials(await request.body())
        if user is None or given is None:
            result, status, body = "invalid", 400, {"error": "send JSON with a username and a password"}
        elif user in DEMO_USERS and hmac.compare_digest(given.encode(), password.encode()):
            result, status, body = "ok", 200, {"user": user, "session": secrets.token_urlsafe(16)}
        else:
            result, status, body = "failed", 401, {"error": "wrong username or password"}
        logins.inc(result)
        # Only a known account is named: a name that is none may be a password typed into the
        # wrong field, or text meant to forge log lines.
        shown = user if user in DEMO_USERS else "?"
        client = request.client.host if request.client else "unknown"
        logins_log.info("login result=%s user=%s client=%s", result, shown, client)
        return JSONResponse(body, status_code=status)

    return login


def _credentials(raw: bytes) -> tuple[str | None, str | None]:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    user, given = body.get("username"), body.get("password")
    return (user if isinstance(user, str) and user else None,
            given if isinstance(given, str) else None)


def _reason(answer: HttpAnswer) -> str:
    """` (what the service said)` from a JSON error body, or nothing."""
    try:
        body = answer.json()
    except ValueError:
        return ""
    said = body.get("reason") or body.get("error") if isinstance(body, dict) else None
    return f" ({said})" if said else ""


# Passing calls on is all the gateway does, so every public route is a main one.
SPEC = ServiceSpec("gateway", gateway_routes, downstreams=("catalog", "orders"),
                   main_routes=tuple(public for _, public, _, _ in PUBLIC_ROUTES),
                   checkout_route="/api/checkout", client_log=True)
