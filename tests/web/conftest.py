"""A control plane (not started) with a small shop inventory, and browsers for its dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.drivers.runtime import InstanceStatus
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store

SHOP = """
platform: {name: shop}
services:
  gateway:
    port: 8000
    kind: gateway
    criticality: critical
    team: edge
    depends_on: [catalog]
    checks: [{type: http, path: /health}]
  catalog:
    port: 8001
    team: "<b>catalog & search</b>"
    description: "Product <script>alert('x')</script> listings"
    runbook: https://runbooks.example/catalog
    depends_on: [postgres-main]
    metrics_path: /metrics
    checks: [{type: http, path: /health}, {type: tcp}]
databases:
  postgres-main: {port: 5432, criticality: critical, team: data, checks: [{type: postgres}]}
caches:
  sessions: {port: 6379, checks: []}
"""
COMPONENTS = ["gateway", "catalog", "postgres-main", "sessions"]


@pytest.fixture
def clock() -> ManualClock:
    clock = ManualClock()
    clock.advance(60 - clock.monotonic() % 60)
    return clock


@pytest.fixture
def plane(tmp_path: Path, clock: ManualClock) -> Iterator[ControlPlane]:
    store = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    try:
        yield ControlPlane(loads(SHOP), store, clock=clock)
    finally:
        store.close()


@pytest.fixture
def client(plane: ControlPlane) -> TestClient:
    # No `with`: the lifespan (scheduler, scraper) does not start; pages read the plane's state.
    return TestClient(create_app(plane), follow_redirects=False)


def make_token(plane: ControlPlane, role: Role = Role.VIEWER, name: str | None = None) -> str:
    with plane.store.session() as session:
        return tokens.create(session, name=name or f"{role.value}-web", role=role, actor="test")


@pytest.fixture
def signed_in(client: TestClient, plane: ControlPlane) -> TestClient:
    answer = client.post("/ui/login", data={"token": make_token(plane)})
    assert answer.status_code == 303, answer.text
    return client


class StandInRuntime:
    """A runtime driver's `status()` with three instances, for pages that list them."""

    def __init__(self) -> None:
        self.asked = 0

    def status(self) -> list[InstanceStatus]:
        self.asked += 1
        started = datetime(2026, 1, 6, 9, 0, tzinfo=UTC)  # an hour before the ManualClock's start
        return [InstanceStatus("catalog", 1, 4242, 8101, "running", started, 0, 50 * 2**20, 1.5, None),
                InstanceStatus("catalog", 2, None, 8102, "failed", None, 3, None, None, "exit 1"),
                InstanceStatus("orders", 1, 4243, 8201, "running", started, 1, 2**20, 0.0, "signal 9")]
