"""Every network probe gives up at its timeout when the server accepts and never answers."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from opsplane.health.models import State
from opsplane.health.targets import CheckTarget
from tests.support.factories import http_target, postgres_target, redis_target, tls_target
from tests.support.http_servers import HangingServer
from tests.support.probing import probe_once

TARGETS: dict[str, Callable[[int], CheckTarget]] = {
    "http": lambda port: http_target(f"http://127.0.0.1:{port}/", timeout=0.5),
    "https": lambda port: http_target(f"https://127.0.0.1:{port}/", timeout=0.5),
    "postgres": lambda port: postgres_target(port, timeout=0.5),
    "redis": lambda port: redis_target(port, timeout=0.5),
    "tls": lambda port: tls_target(port, timeout=0.5),
}


@pytest.mark.parametrize("kind", TARGETS)
async def test_a_silent_server_is_critical_at_the_timeout(kind: str) -> None:
    with HangingServer() as server:
        started = time.perf_counter()
        target = TARGETS[kind](server.port)
        result = await probe_once(target)
        elapsed = time.perf_counter() - started
    assert (result.state, result.reason) == (State.CRITICAL,
                                             f"no answer within 500 ms — {target.address}")
    assert str(server.port) in target.address
    assert elapsed < 0.8
