"""The optional Redis cache of catalog answers: JSON bodies stored with a time to live.

A cache that fails is never an error for the caller: `get` answers None (a miss that is
counted as an error) and `put` gives up quietly, so the catalog keeps answering from the
database while Redis is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shop.faults import FaultInjector
from shop.telemetry import OutcomeCounter

log = logging.getLogger("shop.cache")
_TIMEOUT = 0.25
# After a failure, skip Redis for a moment instead of paying a timeout on every request.
_BACKOFF = 1.0


class ResponseCache:
    """Get and put answer bodies by key, counting hits, misses and errors."""

    def __init__(self, url: str, *, ttl: float, faults: FaultInjector, requests: OutcomeCounter) -> None:
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=_TIMEOUT, socket_connect_timeout=_TIMEOUT, max_connections=64,
        )
        self._ttl_ms = int(ttl * 1000)
        self._faults = faults
        self._requests = requests
        self._skip_until = 0.0

    async def get(self, key: str) -> bytes | None:
        if not self._usable():
            self._requests.inc("error")
            return None
        try:
            value = await self._client.get(key)
        except (RedisError, OSError) as exc:
            self._failed(exc)
            self._requests.inc("error")
            return None
        self._requests.inc("miss" if value is None else "hit")
        return value if value is None or isinstance(value, bytes) else str(value).encode()

    async def put(self, key: str, value: bytes) -> None:
        if not self._usable():
            return
        try:
            await self._client.set(key, value, px=self._ttl_ms)
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def put_many(self, items: Mapping[str, bytes]) -> int:
        """Store every item with the time to live in one round trip; how many. Unlike `put`, a
        failure is raised: a warm-up that did not happen must say so."""
        if self._faults.is_out("cache"):
            raise ConnectionError("outage injected by fault")
        async with self._client.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(key, value, px=self._ttl_ms)
            await pipe.execute()
        return len(items)

    async def ping(self) -> None:
        """Raise when the cache cannot be used (by fault or because Redis does not answer)."""
        if self._faults.is_out("cache"):
            raise ConnectionError("outage injected by fault")
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()

    def _usable(self) -> bool:
        return not self._faults.is_out("cache") and time.monotonic() >= self._skip_until

    def _failed(self, exc: Exception) -> None:
        if time.monotonic() >= self._skip_until:
            log.warning("cache unavailable, bypassing it for %.0f s: %s", _BACKOFF, exc)
        self._skip_until = time.monotonic() + _BACKOFF
