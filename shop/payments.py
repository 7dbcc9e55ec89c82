"""The payments service: a stand-in for a card payment provider. It approves a charge with
the configured probability, declines it with a reason (HTTP 402) otherwise, and now and then
fails as providers do (HTTP 500)."""

from __future__ import annotations

import random
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from shop.middleware import note_failure
from shop.service import ServiceSpec, ShopRuntime

# Decline reasons with their weights, after the codes card networks return most often.
DECLINE_REASONS = ("insufficient_funds", "card_declined", "expired_card", "incorrect_cvc", "do_not_honor")
DECLINE_WEIGHTS = (40, 30, 10, 10, 10)


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    order_id: str = Field(min_length=1, max_length=64)
    amount_cents: int = Field(gt=0)
    currency: str = Field("USD", min_length=3, max_length=3)


def decide(rng: random.Random, success_rate: float, error_rate: float) -> tuple[str, str | None]:
    """("succeeded", None), ("declined", reason) or ("error", reason), drawn from `rng`."""
    if rng.random() < error_rate:
        return "error", "processor_unavailable"
    if rng.random() < success_rate:
        return "succeeded", None
    return "declined", rng.choices(DECLINE_REASONS, DECLINE_WEIGHTS)[0]


def payments_routes(runtime: ShopRuntime) -> APIRouter:
    router = APIRouter(tags=["payments"])
    charges = runtime.counter("payments", "Charges by outcome.", "status", ("succeeded", "declined", "error"))
    settings = runtime.settings

    @router.post("/charges", status_code=201)
    async def create_charge(charge: ChargeRequest, http: Request) -> JSONResponse:
        outcome, reason = decide(runtime.rng, settings.payment_success_rate, settings.payment_error_rate)
        charges.inc(outcome)
        body = {"id": f"ch_{uuid.uuid4().hex[:24]}", "order_id": charge.order_id, "status": outcome,
                "amount_cents": charge.amount_cents, "currency": charge.currency}
        if reason is not None:
            body["reason"] = reason
        if outcome == "error":
            note_failure(http, f"payment processor error: {reason} (simulated, SHOP_PAYMENT_ERROR_RATE)")
        return JSONResponse(body, status_code={"succeeded": 201, "declined": 402, "error": 500}[outcome])

    return router


SPEC = ServiceSpec("payments", payments_routes, main_routes=("/charges",))
