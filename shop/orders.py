"""The orders service: carts and checkout. A checkout claims the cart, writes a pending order,
charges through the payments service and records the outcome on the order.

Database work is plain functions over a Connection (run in worker threads by `Database.run`);
they raise HTTPException for answers the client must see (unknown cart, cart not open).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from shop.db import DependencyUnavailable, cart_items, carts, orders, products
from shop.middleware import note_failure
from shop.service import ServiceSpec, ShopRuntime

CURRENCY = "USD"
_JSON = {"content-type": "application/json"}


class AddItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product_id: int = Field(ge=1)
    quantity: int = Field(1, ge=1, le=99)


class Checkout(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cart_id: str = Field(min_length=1, max_length=32)


def _now() -> datetime:
    return datetime.now(UTC)


def _create_cart(conn: Connection) -> dict[str, Any]:
    cart_id = uuid.uuid4().hex
    conn.execute(carts.insert().values(id=cart_id, status="open", created_at=_now()))
    return {"id": cart_id, "status": "open", "items": [], "total_cents": 0}


def _cart_status(conn: Connection, cart_id: str) -> str:
    status = conn.execute(sa.select(carts.c.status).where(carts.c.id == cart_id)).scalar_one_or_none()
    if status is None:
        raise HTTPException(404, f"no cart {cart_id}")
    return str(status)


def _cart(conn: Connection, cart_id: str, status: str | None = None) -> dict[str, Any]:
    status = status or _cart_status(conn, cart_id)
    rows = conn.execute(
        sa.select(cart_items.c.product_id, sa.func.sum(cart_items.c.quantity).label("quantity"),
                  sa.func.max(cart_items.c.unit_price_cents).label("unit_price_cents"))
        .where(cart_items.c.cart_id == cart_id).group_by(cart_items.c.product_id)
        .order_by(cart_items.c.product_id)
    )
    items = [{"product_id": r.product_id, "quantity": int(r.quantity), "unit_price_cents": r.unit_price_cents}
             for r in rows]
    total = sum(item["quantity"] * item["unit_price_cents"] for item in items)
    return {"id": cart_id, "status": status, "items": items, "total_cents": total}


def _add_item(conn: Connection, cart_id: str, item: AddItem) -> dict[str, Any]:
    # One statement checks the cart is open, reads the price and adds the line; the reason is
    # looked up only when nothing was added. Round trips are most of an add's cost.
    quantity = sa.literal(item.quantity, sa.Integer)
    line = (sa.select(carts.c.id, products.c.id, quantity, products.c.price_cents)
            .select_from(carts.join(products, sa.true()))
            .where(carts.c.id == cart_id, carts.c.status == "open", products.c.id == item.product_id))
    added = conn.execute(cart_items.insert().from_select(
        ["cart_id", "product_id", "quantity", "unit_price_cents"], line).returning(cart_items.c.id)).first()
    if added is None:
        status = _cart_status(conn, cart_id)
        if status != "open":
            raise HTTPException(409, f"cart {cart_id} is {status}: items can only be added to an open cart")
        raise HTTPException(404, f"no product {item.product_id}")
    return _cart(conn, cart_id, "open")


def _begin_checkout(conn: Connection, cart_id: str) -> tuple[str, int]:
    """Claim the open cart (so a second checkout cannot charge twice); write a pending order."""
    line_total = cart_items.c.quantity * cart_items.c.unit_price_cents
    total_of_cart = (sa.select(sa.func.coalesce(sa.func.sum(line_total), 0))
                     .where(cart_items.c.cart_id == cart_id).scalar_subquery())
    claimed = conn.execute(carts.update().where(carts.c.id == cart_id, carts.c.status == "open")
                           .values(status="checking_out").returning(total_of_cart)).first()
    if claimed is None:
        status = _cart_status(conn, cart_id)
        raise HTTPException(409, f"cart {cart_id} is {status}: only an open cart can be checked out")
    total = claimed[0]
    if not total:
        raise HTTPException(422, f"cart {cart_id} is empty: add items before checking out")
    order_id = uuid.uuid4().hex
    now = _now()
    conn.execute(orders.insert().values(id=order_id, cart_id=cart_id, status="pending", total_cents=total,
                                        currency=CURRENCY, created_at=now, updated_at=now))
    return order_id, int(total)


def _finish_checkout(conn: Connection, order_id: str, cart_id: str, status: str, payment_id: str | None,
                     reason: str | None) -> None:
    conn.execute(orders.update().where(orders.c.id == order_id).values(
        status=status, payment_id=payment_id, failure_reason=reason, updated_at=_now()))
    # A failed payment leaves the cart open so that the shopper can try again.
    conn.execute(carts.update().where(carts.c.id == cart_id)
                 .values(status="ordered" if status == "completed" else "open"))


def _order(conn: Connection, order_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(orders).where(orders.c.id == order_id)).first()
    if row is None:
        raise HTTPException(404, f"no order {order_id}")
    found = dict(row._mapping)
    for stamp in ("created_at", "updated_at"):
        found[stamp] = found[stamp].isoformat()
    return found


def _payment_outcome(answer_status: int, body: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """(order status, payment id, failure reason) from the payments service's answer."""
    if answer_status == 201:
        return "completed", body.get("id"), None
    if answer_status == 402:
        return "payment_failed", body.get("id"), str(body.get("reason", "declined"))
    said = body.get("reason") or body.get("error") or "no reason given"
    return "failed", None, f"payments answered HTTP {answer_status} ({said})"


def orders_routes(runtime: ShopRuntime) -> APIRouter:
    router = APIRouter(tags=["orders"])
    database = runtime.require_database()
    downstreams = runtime.require_downstreams()
    outcomes = runtime.counter("orders", "Checkouts by outcome.", "status",
                               ("completed", "payment_failed", "failed"))

    @router.post("/carts", status_code=201)
    async def create_cart() -> dict[str, Any]:
        return await database.run(_create_cart, atomic=False)

    @router.get("/carts/{cart_id}")
    async def get_cart(cart_id: str) -> dict[str, Any]:
        return await database.run(_cart, cart_id, atomic=False)

    @router.post("/carts/{cart_id}/items", status_code=201)
    async def add_item(cart_id: str, item: AddItem) -> dict[str, Any]:
        return await database.run(_add_item, cart_id, item, atomic=False)

    @router.get("/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, Any]:
        return await database.run(_order, order_id, atomic=False)

    @router.post("/checkout")
    async def checkout(request: Checkout, http: Request) -> JSONResponse:
        order_id, total = await database.run(_begin_checkout, request.cart_id)
        charge = json.dumps({"order_id": order_id, "amount_cents": total, "currency": CURRENCY}).encode()
        try:
            answer = await downstreams.request("payments", "POST", "/charges", content=charge, headers=_JSON)
            try:
                body = answer.json()
            except ValueError:
                body = {}
            status, payment_id, reason = _payment_outcome(answer.status_code, body)
        except DependencyUnavailable as exc:
            status, payment_id, reason = "failed", None, str(exc)
        await database.run(_finish_checkout, order_id, request.cart_id, status, payment_id, reason)
        outcomes.inc(status)
        result = {"order_id": order_id, "cart_id": request.cart_id, "status": status, "total_cents": total,
                  "currency": CURRENCY, "payment_id": payment_id}
        if reason is not None:
            result["reason"] = reason
        if status == "failed":
            note_failure(http, reason or "the charge failed")
        return JSONResponse(result, status_code={"completed": 201, "payment_failed": 402}.get(status, 502))

    return router


SPEC = ServiceSpec("orders", orders_routes, database=True, downstreams=("payments",),
                   main_routes=("/checkout",), checkout_route="/checkout")
