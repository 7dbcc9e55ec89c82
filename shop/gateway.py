"""The gateway: the shop's public API under /api, each route passed on to the service that
owns it. Bodies travel as bytes; the owning service validates them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

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
    return router


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
                   checkout_route="/api/checkout")
