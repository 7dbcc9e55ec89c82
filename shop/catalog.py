"""The catalog service: product pages, single products and search, answered from Redis when
the cache holds them and from the database otherwise; `POST /admin/cache/warm` loads the hot
keys (the first product page and the top products) into an empty cache, as after a flush."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Response
from redis.exceptions import RedisError
from sqlalchemy.engine import Connection

from shop.admin import admin_guard
from shop.db import DependencyUnavailable, cart_items, products
from shop.service import ServiceSpec, ShopRuntime

PAGE_SIZE = 20
SEARCH_LIMIT = 20
WARM_TOP = 20  # products the warm-up loads one by one
_COLUMNS = (products.c.id, products.c.sku, products.c.name, products.c.description, products.c.category,
            products.c.price_cents)


def _product(row: Any) -> dict[str, Any]:
    return {"id": row.id, "sku": row.sku, "name": row.name, "description": row.description,
            "category": row.category, "price_cents": row.price_cents, "currency": "USD"}


def _page(conn: Connection, page: int, per_page: int, category: str | None) -> dict[str, Any]:
    where = [] if category is None else [products.c.category == category]
    total = conn.execute(sa.select(sa.func.count()).select_from(products).where(*where)).scalar_one()
    rows = conn.execute(sa.select(*_COLUMNS).where(*where).order_by(products.c.id)
                        .limit(per_page).offset((page - 1) * per_page))
    return {"page": page, "per_page": per_page, "total": total, "pages": -(-total // per_page),
            "items": [_product(row) for row in rows]}


def _one(conn: Connection, product_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(*_COLUMNS).where(products.c.id == product_id)).first()
    return None if row is None else _product(row)


def _search(conn: Connection, query: str, limit: int) -> dict[str, Any]:
    pattern = f"%{query.lower()}%"
    matches = sa.or_(sa.func.lower(products.c.name).like(pattern),
                     sa.func.lower(products.c.category).like(pattern))
    rows = conn.execute(sa.select(*_COLUMNS).where(matches).order_by(products.c.id).limit(limit))
    items = [_product(row) for row in rows]
    return {"query": query, "total": len(items), "items": items}


def _page_key(page: int, per_page: int, category: str | None) -> str:
    return f"shop:products:{page}:{per_page}:{category or ''}"


def _product_key(product_id: int) -> str:
    return f"shop:product:{product_id}"


def _hot_keys(conn: Connection, top: int) -> dict[str, bytes]:
    """What shoppers read most, as the routes cache it: the first product page and the `top`
    products most often put in a cart (then the first ones by id)."""
    carted = (sa.select(cart_items.c.product_id, sa.func.count().label("n"))
              .group_by(cart_items.c.product_id).subquery())
    rows = conn.execute(sa.select(*_COLUMNS).outerjoin(carted, carted.c.product_id == products.c.id)
                        .order_by(sa.func.coalesce(carted.c.n, 0).desc(), products.c.id).limit(top))
    found = {_page_key(1, PAGE_SIZE, None): json.dumps(_page(conn, 1, PAGE_SIZE, None)).encode()}
    for row in rows:
        found[_product_key(row.id)] = json.dumps(_product(row)).encode()
    return found


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def catalog_routes(runtime: ShopRuntime) -> APIRouter:
    router = APIRouter(tags=["catalog"])
    database = runtime.require_database()
    cache = runtime.cache
    searches = runtime.counter("search_queries", "Catalog searches by result.", "result",
                               ("hit", "empty", "error"))

    async def cached(key: str) -> bytes | None:
        return None if cache is None else await cache.get(key)

    async def remember(key: str, body: bytes) -> None:
        if cache is not None:
            await cache.put(key, body)

    @router.get("/products")
    async def list_products(
        page: int = Query(1, ge=1, le=10_000), per_page: int = Query(PAGE_SIZE, ge=1, le=100),
        category: str | None = Query(None, max_length=64),
    ) -> Response:
        key = _page_key(page, per_page, category)
        body = await cached(key)
        if body is None:
            body = json.dumps(await database.run(_page, page, per_page, category, atomic=False)).encode()
            await remember(key, body)
        return _json(body)

    @router.get("/products/{product_id}")
    async def get_product(product_id: int) -> Response:
        key = _product_key(product_id)
        body = await cached(key)
        if body is None:
            found = await database.run(_one, product_id, atomic=False)
            if found is None:
                raise HTTPException(404, f"no product {product_id}")
            body = json.dumps(found).encode()
            await remember(key, body)
        return _json(body)

    @router.get("/search")
    async def search(q: str = Query(..., min_length=1, max_length=100),
                     limit: int = Query(SEARCH_LIMIT, ge=1, le=100)) -> Response:
        query = " ".join(q.split()).lower()
        key = f"shop:search:{limit}:{query}"
        stored = await cached(key)
        if stored is not None:
            # The cached value starts with the match count, so a hit is classified without parsing.
            count, _, body = stored.partition(b"\n")
            searches.inc("hit" if count != b"0" else "empty")
            return _json(body)
        try:
            result = await database.run(_search, query, limit, atomic=False)
        except DependencyUnavailable:
            searches.inc("error")
            raise
        body = json.dumps(result).encode()
        searches.inc("hit" if result["total"] else "empty")
        await remember(key, str(result["total"]).encode() + b"\n" + body)
        return _json(body)

    @router.post("/admin/cache/warm", dependencies=[Depends(admin_guard(runtime.settings.admin_token))])
    async def warm_cache(top: int = Query(WARM_TOP, ge=0, le=1000)) -> dict[str, Any]:
        if cache is None:
            raise HTTPException(409, "this catalog runs without a cache: SHOP_REDIS_URL is not set")
        items = await database.run(_hot_keys, top, atomic=False)
        try:
            stored = await cache.put_many(items)
        except (RedisError, OSError) as exc:
            raise HTTPException(503, f"the cache did not take the warm-up: {exc}") from None
        return {"keys": stored, "pages": 1, "products": stored - 1}

    return router


# The product listing is the catalog's main route: most of what shoppers ask it is pages.
SPEC = ServiceSpec("catalog", catalog_routes, database=True, cache=True, main_routes=("/products",))
