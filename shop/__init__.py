"""The reference e-commerce shop that opsplane operates: a gateway, a catalog, orders and a
payment provider stand-in, each a FastAPI app with health, metrics and fault injection.

Start one with `python -m shop SERVICE --port N`; drive it with `python -m shop.traffic`.
"""

from __future__ import annotations

SERVICES: tuple[str, ...] = ("gateway", "catalog", "orders", "payments")

__all__ = ["SERVICES"]
