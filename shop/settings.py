"""Shop configuration, read from an environment mapping that the caller passes in.

Every setting has a default that works on one machine with nothing else running, so
`python -m shop catalog` starts on SQLite without any variable set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shop import SERVICES
from shop.releases import DEFAULT_RELEASE, UnknownRelease, get_by_name

DEFAULT_PORTS: dict[str, int] = {"gateway": 8200, "catalog": 8201, "orders": 8202, "payments": 8203}


class ShopConfigError(Exception):
    """A setting is malformed; the process exits with code 3 before serving anything."""

    exit_code = 3


@dataclass(frozen=True)
class ShopSettings:
    """Everything a shop service reads from its environment, already validated."""

    database_url: str
    redis_url: str | None = None
    downstream_urls: dict[str, str] = field(default_factory=dict)
    payment_success_rate: float = 0.98
    payment_error_rate: float = 0.002
    version: str = DEFAULT_RELEASE  # a name in shop.releases.RELEASES
    admin_token: str | None = None
    faults: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    cache_ttl: float = 30.0
    db_pool_size: int = 10
    db_max_overflow: int = 10
    client_window: float = 60.0  # the gateway's window of requests per client, in its log


def load_settings(environ: Mapping[str, str] | None = None) -> ShopSettings:
    """Settings from `environ` (os.environ when None); ShopConfigError naming the bad variable."""
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("SHOP_DATA_DIR") or Path.home() / ".local/share/opsplane-shop")
    database_url = env.get("SHOP_DATABASE_URL") or f"sqlite:///{data_dir / 'shop.db'}"
    return ShopSettings(
        database_url=sqlalchemy_url(database_url),
        redis_url=env.get("SHOP_REDIS_URL") or None,
        downstream_urls={
            name: _base_url(env, f"SHOP_{name.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[name]}")
            for name in SERVICES if name != "gateway"
        },
        payment_success_rate=_ratio(env, "SHOP_PAYMENT_SUCCESS_RATE", 0.98),
        payment_error_rate=_ratio(env, "SHOP_PAYMENT_ERROR_RATE", 0.002),
        version=_release(env, "SHOP_VERSION"),
        admin_token=env.get("SHOP_ADMIN_TOKEN") or None,
        faults=_json_object(env, "SHOP_FAULTS"),
        seed=_optional_int(env, "SHOP_SEED"),
        cache_ttl=_positive_float(env, "SHOP_CACHE_TTL", 30.0),
        db_pool_size=int(_positive_float(env, "SHOP_DB_POOL_SIZE", 10)),
        db_max_overflow=int(_positive_float(env, "SHOP_DB_MAX_OVERFLOW", 10, allow_zero=True)),
        client_window=_positive_float(env, "SHOP_CLIENT_WINDOW", 60.0),
    )


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy URL for a plain PostgreSQL or SQLite URL (PostgreSQL through psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    if url.startswith(("postgresql+psycopg://", "sqlite:///")):
        return url
    raise ShopConfigError(
        f"SHOP_DATABASE_URL {_redact(url)!r} is not supported: use "
        "postgresql://user:password@host:port/database or sqlite:///path/to/file.db"
    )


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def _base_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = (env.get(name) or default).rstrip("/")
    if not value.startswith("http://"):
        raise ShopConfigError(f"{name}={value!r} is not an http:// base URL (services talk plain HTTP)")
    return value


def _release(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name) or DEFAULT_RELEASE
    try:
        return get_by_name(raw).name
    except UnknownRelease as exc:
        raise ShopConfigError(f"{name}={exc}") from None


def _ratio(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ShopConfigError(f"{name}={raw!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ShopConfigError(f"{name}={raw!r} must be between 0 and 1")
    return value


def _positive_float(env: Mapping[str, str], name: str, default: float, allow_zero: bool = False) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ShopConfigError(f"{name}={raw!r} is not a number") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ShopConfigError(f"{name}={raw!r} must be {'zero or more' if allow_zero else 'positive'}")
    return value


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ShopConfigError(f"{name}={raw!r} is not an integer") from None


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    raw = env.get(name)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ShopConfigError(f"{name} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ShopConfigError(f"{name} must be a JSON object, e.g. {{\"latency_ms\": {{\"*\": 100}}}}")
    return value
