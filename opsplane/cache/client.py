"""Talking to one of the inventory's Redis caches: where it is, its password from the secret
reference, INFO, the big-key sample (SCAN + MEMORY USAGE), and FLUSHDB.

Every failure to reach or read the server is a `CacheUnreachable` with the reason and the
address, never a traceback; the password is never part of a reason.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opsplane.cache.analysis import parse_keyspace
from opsplane.cache.models import BigKey, CacheFacts, Sample
from opsplane.config.models import Inventory
from opsplane.errors import OpsplaneError, UsageError

TIMEOUT = 10.0
SCAN_COUNT = 100  # keys asked for per SCAN call
BIGGEST_KEPT = 10


class CacheUnreachable(OpsplaneError):
    """The cache did not answer, refused us, or answered an error."""


@dataclass(frozen=True)
class CacheAddress:
    """Where a cache listens, in the inventory's default environment, and its password."""

    name: str
    host: str
    port: int
    password: str | None

    @property
    def shown(self) -> str:
        return f"redis://{self.host}:{self.port}"


def cache_names(inventory: Inventory, name: str | None = None) -> list[str]:
    """The caches to look at: `name` (refused with the known names when it is none), else all."""
    if name is None:
        return list(inventory.caches)
    if name not in inventory.caches:
        known = ", ".join(inventory.caches) or "none"
        raise UsageError(f"no cache {name!r} in the inventory; the caches are: {known}")
    return [name]


def address(inventory: Inventory, name: str, environ: Mapping[str, str]) -> CacheAddress:
    """Cache `name`'s host and port in the default environment and its resolved password."""
    from opsplane.config.types import SecretRef

    cache = inventory.caches[name]
    environment = inventory.platform.default_environment
    override = cache.environments.get(environment)
    env = inventory.environments.get(environment)
    host = (override.host if override else None) or cache.host or (env.host if env else None) or "127.0.0.1"
    port = (override.port if override else None) or cache.port or 6379
    password = SecretRef(cache.password).resolve(dict(environ)) if cache.password else None
    return CacheAddress(name, host, port, password)


def connect(where: CacheAddress, db: int = 0) -> Any:
    import redis

    return redis.Redis(host=where.host, port=where.port, password=where.password, db=db,
                       socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)


def _failed(where: CacheAddress, exc: Exception) -> CacheUnreachable:
    text = str(exc) or type(exc).__name__
    if where.password:
        text = text.replace(where.password, "***")
    return CacheUnreachable(f"{where.name} at {where.shown}: {text}")


def read(where: CacheAddress, *, sample_size: int = 1000) -> CacheFacts:
    """INFO, the keyspace and (sample_size > 0) a sample of each database's keys with their
    memory, the biggest kept."""
    import redis

    client = connect(where)
    try:
        info = {k: str(v) if not isinstance(v, dict) else ",".join(f"{a}={b}" for a, b in v.items())
                for k, v in client.info("all").items()}
    except (redis.RedisError, OSError) as exc:
        raise _failed(where, exc) from None
    finally:
        client.close()
    keyspace = parse_keyspace(info)
    sample = None
    if sample_size > 0:
        sample = big_keys(where, [db.db for db in keyspace if db.keys], sample_size)
    return CacheFacts(where.name, where.shown, info, keyspace, sample)


def big_keys(where: CacheAddress, dbs: list[int], sample_size: int) -> Sample:
    """Up to `sample_size` keys of each database visited by SCAN, measured by MEMORY USAGE, the
    biggest kept with their TYPE. MEMORY USAGE leaves Redis's hit and miss counters alone; TYPE
    counts as a lookup, so it is asked only of the few keys kept."""
    import redis

    looked: dict[int, int] = {}
    found: list[BigKey] = []
    for db in dbs:
        client = connect(where, db)
        try:
            keys: list[bytes] = []
            for key in client.scan_iter(count=SCAN_COUNT):
                keys.append(key)
                if len(keys) >= sample_size:
                    break
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.memory_usage(key)
            sizes = pipe.execute(raise_on_error=False)
            # a key expired between SCAN and MEMORY USAGE has no size
            measured = [(key, size) for key, size in zip(keys, sizes, strict=True) if isinstance(size, int)]
            biggest = heapq.nlargest(BIGGEST_KEPT, measured, key=lambda item: item[1])
            pipe = client.pipeline(transaction=False)
            for key, _ in biggest:
                pipe.type(key)
            kinds = pipe.execute(raise_on_error=False)
        except (redis.RedisError, OSError) as exc:
            raise _failed(where, exc) from None
        finally:
            client.close()
        looked[db] = len(keys)
        found += [BigKey(db, key.decode("utf-8", "replace"), _text(kind), size)
                  for (key, size), kind in zip(biggest, kinds, strict=True)]
    return Sample(sample_size, looked, tuple(heapq.nlargest(BIGGEST_KEPT, found, key=lambda k: k.bytes)))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def flushdb(where: CacheAddress, db: int = 0) -> int:
    """Delete every key of database `db`; how many keys it held just before."""
    import redis

    client = connect(where, db)
    try:
        keys = int(client.dbsize())
        client.flushdb()
    except (redis.RedisError, OSError) as exc:
        raise _failed(where, exc) from None
    finally:
        client.close()
    return keys
