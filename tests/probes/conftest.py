"""Real servers for probe tests: the session's PostgreSQL cluster (tests/conftest.py) and a Redis.

Both require a password, so every probe run exercises authentication; tests read the
passwords through secret references (env:NAME) resolved from SECRETS.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opsplane.drivers.sandbox.redis import TemporaryRedis
from tests.support.passwords import PG_PASSWORD

REDIS_PASSWORD = "cache-probe-secret"
SECRETS = {"PG_PASSWORD": PG_PASSWORD, "REDIS_PASSWORD": REDIS_PASSWORD}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryRedis]:
    """A private Redis on a free loopback port, password REDIS_PASSWORD."""
    with TemporaryRedis(tmp_path_factory.mktemp("redis"), password=REDIS_PASSWORD) as server:
        yield server


@pytest.fixture
def fresh_redis(redis_server: TemporaryRedis) -> Iterator[TemporaryRedis]:
    """The session Redis emptied, statistics reset and without a memory limit."""
    client = redis_server.client()
    try:
        client.flushall()
        client.config_set("maxmemory", 0)
        client.config_resetstat()
        yield redis_server
    finally:
        client.config_set("maxmemory", 0)
        client.close()
