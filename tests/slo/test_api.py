"""The SLO routes: viewers read every SLO's status and one SLO's monthly review, from the store
when the worker has not judged them yet; no token is 401, an unknown SLO 404, a bad month 422."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.server import ControlPlane, create_app
from opsplane.slo import service
from opsplane.slo.tables import SloHourRow
from opsplane.store import Store

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
INVENTORY = """
platform: {name: shop}
services:
  gateway: {port: 8080, metrics_path: /metrics}
slos:
  gateway-availability:
    service: gateway
    objective: 99.9%
    calendar: {unit: month}
    sli: {events: {bad: 'http_requests_total{status=~"5.."}', total: http_requests_total}}
"""


@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    return ControlPlane(loads(INVENTORY), Store.open(f"sqlite:///{tmp_path}/o.db"), clock=ManualClock(NOW))


@pytest.fixture
def client(plane: ControlPlane) -> TestClient:
    return TestClient(create_app(plane))


@pytest.fixture
def viewer(plane: ControlPlane) -> dict[str, str]:
    with plane.store.session() as session:
        secret = tokens.create(session, name="viewer-ana", role=Role.VIEWER, actor="test")
    return {"Authorization": f"Bearer {secret}"}


def test_viewers_read_each_slos_budget_and_burn_rates(client: TestClient, plane: ControlPlane,
                                                   viewer: dict[str, str]) -> None:
    first = int(NOW.timestamp()) // 60 - 120
    with plane.store.session() as session:
        for m in range(first, first + 120):
            service.record(session, slo="gateway-availability", minute=m, good=998.0, total=1000.0)
    assert client.get("/api/v1/slos").status_code == 401
    answer = client.get("/api/v1/slos", headers=viewer)
    assert answer.status_code == 200, answer.text
    [slo] = answer.json()
    assert slo["name"] == "gateway-availability" and slo["state"] == "exhausted"
    assert slo["budget_remaining"] == pytest.approx(-1.0) and slo["burn_rates"]["1h"] == pytest.approx(2.0)
    assert slo["window_start"] == "2026-12-01T00:00:00+00:00"
    one = client.get("/api/v1/slos/gateway-availability", headers=viewer).json()
    assert one["events"] == 120_000.0


def test_the_monthly_review_of_one_slo(client: TestClient, plane: ControlPlane,
                                       viewer: dict[str, str]) -> None:
    with plane.store.session() as session:
        for h in range(30 * 24):
            session.add(SloHourRow(slo="gateway-availability", at=datetime(2026, 11, 1, tzinfo=UTC)
                                   + timedelta(hours=h), good=1000.0, total=1000.0, slices=0, bad_slices=0,
                                   minutes=60))
    answer = client.get("/api/v1/slos/gateway-availability/report", params={"month": "2026-11"},
                        headers=viewer)
    assert answer.status_code == 200, answer.text
    review = answer.json()
    assert review["month"] == "2026-11" and review["achieved"] == 1.0 and review["met"] is True
    assert review["worst_days"] == [] and review["budget_used"] == 0.0


def test_an_unknown_slo_is_404_and_a_bad_month_422(client: TestClient, plane: ControlPlane,
                                                  viewer: dict[str, str]) -> None:
    said = client.get("/api/v1/slos/checkout", headers=viewer)
    assert said.status_code == 404 and "gateway-availability" in said.text
    assert client.get("/api/v1/slos/gateway-availability/report", params={"month": "2026-13"},
                      headers=viewer).status_code == 422
    assert client.get("/api/v1/slos/gateway-availability/report", params={"month": "Nov"},
                      headers=viewer).status_code == 422
