"""Fixtures of the runtime tests: a platform per test, and nothing left running after it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsplane.drivers.runtime.processes import stop_session
from tests.runtime.platforms import SECRET, Platform


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """An empty platform directory with its own store; whatever it started is stopped after."""
    env = {**os.environ, "OPSPLANE_DATABASE_URL": f"sqlite:///{tmp_path}/opsplane.db", "SHOP_TOKEN": SECRET,
           "COLUMNS": "200"}
    made = Platform(tmp_path, env)
    try:
        yield made
    finally:
        _leave_nothing(made)


def _leave_nothing(platform: Platform) -> None:
    leftovers = platform.recorded()
    if platform.inventory_path.exists():
        try:
            platform.driver().down()
        except Exception:  # noqa: BLE001 - clean-up after a failed test goes on regardless
            pass
    for identity in leftovers:
        stop_session(identity, 2.0)


@pytest.fixture
def free_ports() -> Callable[[int], list[int]]:
    from opsplane.drivers.sandbox.ports import free_port

    return lambda count: [free_port() for _ in range(count)]
