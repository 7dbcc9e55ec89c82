"""The capacity page rendered by the real app over a real store: each resource's chart (an SVG
with its use, its forecast and its trigger), the fit chosen and the time to the trigger, and the
last KPI report."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from opsplane.auth.service import Role
from opsplane.capacity import kpi, service
from opsplane.capacity.models import resolve_kpis
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.reports import service as reports
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.web.conftest import make_token

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
INVENTORY = """
platform: {name: shop}
services:
  gateway: {port: 8000, metrics_path: /metrics}
capacity: {min_history: 12h}
"""


@pytest.fixture
def plane(store: Store) -> Iterator[ControlPlane]:
    yield ControlPlane(loads(INVENTORY), store, clock=ManualClock(NOW))


def test_the_page_draws_each_resource_with_its_forecast_and_time_to_trigger(plane: ControlPlane) -> None:
    start = NOW - timedelta(days=1)
    with plane.store.session() as session:
        for n in range(24 * 6):  # a day every ten minutes: disk from 60 %, 0.5 % an hour; CPU flat
            at = start + timedelta(minutes=10 * n)
            service.record(session, {"disk:/": 0.60 + 0.005 * n / 6, "cpu": 0.30}, at=at)
        for n in range(6):  # memory recorded only for the last hour: too little to forecast
            service.record(session, {"memory": 0.40 + 0.05 * n}, at=NOW - timedelta(minutes=10 * (5 - n)))
        results = kpi.measure(resolve_kpis(None), 3600, lambda expr: [({}, 0.12)])
        reports.save(session, kpi.report(results, window=3600), trigger="cli", requested_by="test", slot=None,
                     started_at=NOW, now=NOW)
    client = TestClient(create_app(plane), follow_redirects=False)
    assert client.get("/ui/capacity").status_code != 200  # signed out
    answer = client.post("/ui/login", data={"token": make_token(plane, Role.VIEWER, name="viewer-cap")})
    assert answer.status_code == 303
    page = client.get("/ui/capacity")
    assert page.status_code == 200
    html = page.text
    figures = {re.match(r' data-resource="([^"]+)"', part).group(1): part  # type: ignore[union-attr]
               for part in html.split('<figure class="timechart"')[1:]}
    assert set(figures) == {"cpu", "disk:/", "memory"}
    disk, cpu, memory = figures["disk:/"], figures["cpu"], figures["memory"]
    assert 'data-figure="time-to-trigger">not forecast yet (50 min of history)<' in memory
    assert "linear forecast" not in memory  # its steep hour is not drawn ahead
    assert "<svg" in disk and "polyline" in disk and "trigger 85.0%" in disk
    # 60 % + 0.5 %/h: 71.9 % at the last recording, 85 % about 26 hours later
    ttt = re.search(r'data-figure="time-to-trigger">([^<]+)<', disk)
    assert ttt is not None and ttt.group(1).endswith(" h")
    assert 24 < float(ttt.group(1).split()[0]) < 28
    assert "linear forecast" in disk
    assert 'data-status="critical"' in disk  # within the week
    assert "<svg" in cpu and 'data-status="ok"' in cpu and "no trigger" not in cpu
    assert 'data-kpi="cache_hit_rate" data-status="critical"' in html  # 12 % hits
    assert 'aria-current="page">Capacity' in html
