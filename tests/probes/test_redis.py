"""The Redis probe against a real server: readiness, memory against maxmemory, the hit
ratio, and authentication failures."""

from __future__ import annotations

from pathlib import Path

from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.health.models import State
from tests.probes.conftest import SECRETS
from tests.support.factories import redis_target
from tests.support.http_servers import LocalHttpServer, closed_port
from tests.support.probing import probe_once


async def test_a_healthy_server_without_maxmemory_is_ok(fresh_redis: TemporaryRedis) -> None:
    result = await probe_once(redis_target(fresh_redis.port, password="env:REDIS_PASSWORD"),
                              environ=SECRETS)
    assert result.state is State.OK, result.reason
    assert result.reason.startswith("Redis 7") and " master ready in " in result.reason
    assert result.reason.endswith(", no maxmemory")
    metrics = result.metrics
    assert metrics["maxmemory"] == "unlimited" and metrics["memory_ratio"] is None
    assert metrics["role"] == "master"
    assert metrics["connected_clients"] >= 1  # type: ignore[operator]
    assert metrics["used_memory"] > 0  # type: ignore[operator]
    assert metrics["hit_ratio"] is None  # no lookups yet


async def test_memory_near_maxmemory_is_warning_then_critical(fresh_redis: TemporaryRedis) -> None:
    client = fresh_redis.client()
    try:
        client.mset({f"cart:{i}": "x" * 10_000 for i in range(200)})
        used = int(client.info("memory")["used_memory"])
        target = redis_target(fresh_redis.port, password="env:REDIS_PASSWORD")
        client.config_set("maxmemory", int(used / 0.82))
        warning = await probe_once(target, environ=SECRETS)
        client.config_set("maxmemory", int(used / 0.95))
        critical = await probe_once(target, environ=SECRETS)
    finally:
        client.close()
    assert warning.state is State.WARNING, warning.reason
    assert warning.reason.startswith("memory 8")
    assert warning.reason.endswith(f"(warning at 75%) — redis://127.0.0.1:{fresh_redis.port}")
    assert 0.78 < warning.metrics["memory_ratio"] < 0.86  # type: ignore[operator]
    assert critical.state is State.CRITICAL
    assert critical.reason.endswith(f"(critical at 90%) — {target.address}")


async def test_a_low_hit_ratio_warns_once_there_are_enough_lookups(
    fresh_redis: TemporaryRedis,
) -> None:
    client = fresh_redis.client()
    target = redis_target(fresh_redis.port, password="env:REDIS_PASSWORD",
                          hit_ratio_warning="50%")
    try:
        client.set("session:1", "alive")
        for _ in range(10):
            client.get("session:1")
        for i in range(40):
            client.get(f"missing:{i}")
        too_few = await probe_once(target, environ=SECRETS)  # 50 lookups: not judged
        for i in range(150):
            client.get(f"missing:{i}")
        judged = await probe_once(target, environ=SECRETS)
    finally:
        client.close()
    assert too_few.state is State.OK
    assert too_few.metrics["hit_ratio"] == 0.2
    assert judged.state is State.WARNING
    assert judged.reason == f"hit ratio 5% (warning at 50%) — redis://127.0.0.1:{fresh_redis.port}"


async def test_a_wrong_password_is_rejected(redis_server: TemporaryRedis) -> None:
    result = await probe_once(redis_target(redis_server.port, password="env:WRONG"),
                              environ={"WRONG": "hunter2"})
    assert result.state is State.CRITICAL
    assert result.reason.startswith("authentication failed: WRONGPASS")
    assert "hunter2" not in result.reason


async def test_a_missing_password_says_one_is_required(redis_server: TemporaryRedis) -> None:
    result = await probe_once(redis_target(redis_server.port))
    assert (result.state, result.reason) == (
        State.CRITICAL, "authentication required: set the password of this cache — "
                        f"redis://127.0.0.1:{redis_server.port}")


async def test_a_password_for_a_server_without_one_is_reported(tmp_path: Path) -> None:
    with TemporaryRedis(tmp_path) as open_server:
        result = await probe_once(redis_target(open_server.port, password="env:REDIS_PASSWORD"),
                                  environ=SECRETS)
    assert result.state is State.CRITICAL
    assert result.reason.startswith("authentication failed: ERR AUTH")


async def test_nothing_listening_refuses_connections() -> None:
    port = closed_port()
    result = await probe_once(redis_target(port))
    assert (result.state, result.reason) == (State.CRITICAL,
                                             f"refuses connections — redis://127.0.0.1:{port}")


async def test_something_that_is_not_redis_is_critical() -> None:
    with LocalHttpServer() as server:
        result = await probe_once(redis_target(server.port))
    assert result.state is State.CRITICAL
    assert result.reason.startswith("not a Redis server")
