"""Check targets for tests, built through the real pydantic check models."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from opsplane.config.models import (
    CommandCheck,
    HostCheck,
    HttpCheck,
    PostgresCheck,
    RedisCheck,
    TcpCheck,
    TlsCheck,
)
from opsplane.config.types import SecretRef
from opsplane.health.targets import CheckTarget


def target_for(
    check: Any,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    url: str | None = None,
    timeout: float = 5.0,
    database: str | None = None,
    user: str | None = None,
    password: str | None = None,
    component: str = "svc",
) -> CheckTarget:
    """A CheckTarget for `check`, as check_targets would resolve it."""
    return CheckTarget(
        component=component,
        section="services",
        name=check.name or check.type,
        check=check,
        host=host,
        port=port,
        url=url,
        interval=10.0,
        timeout=timeout,
        database=database,
        user=user,
        password=SecretRef(password) if password is not None else None,
    )


def http_target(url: str, *, timeout: float = 5.0, **fields: Any) -> CheckTarget:
    """An http check of `url`; `fields` are HttpCheck fields (json=..., expect_status=...)."""
    parts = urlsplit(url)
    check = HttpCheck(type="http", url=url, **fields)
    return target_for(check, host=parts.hostname or "127.0.0.1", port=parts.port, url=url,
                      timeout=timeout)


def tcp_target(port: int, *, host: str = "127.0.0.1", timeout: float = 5.0) -> CheckTarget:
    return target_for(TcpCheck(type="tcp"), host=host, port=port, timeout=timeout)


def postgres_target(
    port: int,
    *,
    database: str = "postgres",
    user: str = "postgres",
    password: str | None = None,
    timeout: float = 5.0,
    **fields: Any,
) -> CheckTarget:
    """A postgres check; `password` is a secret reference such as env:PGPASS."""
    return target_for(PostgresCheck(type="postgres", **fields), port=port, database=database,
                      user=user, password=password, timeout=timeout, component="db")


def redis_target(port: int, *, password: str | None = None, timeout: float = 5.0,
                 **fields: Any) -> CheckTarget:
    """A redis check; `password` is a secret reference such as env:REDIS_PASS."""
    return target_for(RedisCheck(type="redis", **fields), port=port, password=password,
                      timeout=timeout, component="cache")


def tls_target(port: int, *, host: str = "127.0.0.1", timeout: float = 5.0,
               **fields: Any) -> CheckTarget:
    return target_for(TlsCheck(type="tls", **fields), host=host, port=port, timeout=timeout)


def command_target(argv: list[str], *, timeout: float = 5.0, **fields: Any) -> CheckTarget:
    return target_for(CommandCheck(type="command", argv=argv, **fields), timeout=timeout)


def host_target(**fields: Any) -> CheckTarget:
    return target_for(HostCheck(type="host", **fields), component="node")
