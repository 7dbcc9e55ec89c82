"""Every worker's health on `/health` and `/metrics`: the domains' workers while they run, and
one that crashed or fell behind its schedule makes the control plane degraded, with why."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.config.loader import loads
from opsplane.drivers.sandbox.ports import free_port
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.support.polling import wait_for

INVENTORY = ("platform: {name: shop}\ndefaults: {interval: 200ms, timeout: 200ms}\n"
             "services:\n  orders: {port: %d, checks: [{type: tcp}]}\n")


def plane_with(tmp_path: Path, extra: str = "") -> ControlPlane:
    environ = {"OPSPLANE_EXTRA_WORKERS": extra} if extra else {}
    return ControlPlane(loads(INVENTORY % free_port()), Store.open(f"sqlite:///{tmp_path}/o.db"),
                        environ=environ, flush_interval=0.05)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(plane_with(tmp_path))) as started:
        yield started


def metric(text: str, name: str, worker: str) -> float | None:
    found = re.search(rf'^{name}{{worker="{worker}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_health_lists_the_domains_workers_with_their_state_and_last_run(client: TestClient) -> None:
    def checked() -> dict[str, dict[str, object]] | None:
        workers = {w["name"]: w for w in client.get("/health").json()["workers"]}
        return workers if workers["health"].get("last_run") else None

    workers = wait_for(checked, "the health worker's first round")
    answer = client.get("/health")
    assert answer.status_code == 200 and answer.json()["status"] == "ok"
    assert answer.json()["checks"] == 1 and answer.json()["environment"] == "production"
    # no channels: nothing pages, nothing delivers; no runtime to follow
    assert list(workers) == ["health", "metrics", "alerts"]
    assert {name: (w["state"], w["singleton"], w["errors"]) for name, w in workers.items()} == {
        "health": ("running", True, 0), "metrics": ("running", True, 0), "alerts": ("running", True, 0)}
    assert all(w["lag_seconds"] < 5 and "problem" not in w for w in workers.values())

    text = client.get("/metrics").text
    assert metric(text, "opsplane_worker_up", "health") == 1.0
    assert metric(text, "opsplane_worker_errors_total", "alerts") == 0.0
    assert metric(text, "opsplane_worker_lag_seconds", "metrics") == 0.0
    assert (metric(text, "opsplane_worker_last_run_timestamp_seconds", "health") or 0) > time.time() - 60


def test_a_crashed_worker_makes_health_degraded_with_its_error(tmp_path: Path) -> None:
    plane = plane_with(tmp_path, "tests.support.workers:crashing")
    with TestClient(create_app(plane)) as client:
        assert client.get("/health").status_code == 200
        with plane.store.session() as session:
            operator = tokens.create(session, name="ops", role=Role.OPERATOR, actor="test")
        woken = client.post("/api/v1/workers/crashing/wake", headers={"Authorization": f"Bearer {operator}"})
        assert woken.status_code == 202, woken.text
        answer = wait_for(lambda: (got := client.get("/health")).status_code == 503 and got,
                          "/health to say degraded")
        text = client.get("/metrics").text
    body = answer.json()
    assert body["status"] == "degraded"
    assert body["reason"] == "worker crashing crashed: RuntimeError: the backup disk is gone"
    crashed = next(w for w in body["workers"] if w["name"] == "crashing")
    assert (crashed["state"], crashed["errors"]) == ("crashed", 1)
    assert crashed["last_error"] == "RuntimeError: the backup disk is gone"
    assert metric(text, "opsplane_worker_up", "crashing") == 0.0
    assert metric(text, "opsplane_worker_errors_total", "crashing") == 1.0
    assert metric(text, "opsplane_worker_up", "health") == 1.0  # the others go on


def test_a_worker_far_behind_its_schedule_makes_health_degraded(tmp_path: Path) -> None:
    plane = plane_with(tmp_path, "tests.support.workers:stuck")
    with TestClient(create_app(plane)) as client:
        answer = wait_for(lambda: (got := client.get("/health")).status_code == 503 and got,
                          "/health to say degraded")
        assert re.fullmatch(r"worker stuck is \d+ s behind its schedule", answer.json()["reason"])
        assert (metric(client.get("/metrics").text, "opsplane_worker_lag_seconds", "stuck") or 0) > 0.2


def test_waking_an_unknown_worker_is_a_404_and_a_viewer_may_not(client: TestClient) -> None:
    plane = client.app.state.plane  # type: ignore[attr-defined]
    with plane.store.session() as session:
        operator = tokens.create(session, name="ops", role=Role.OPERATOR, actor="test")
        viewer = tokens.create(session, name="look", role=Role.VIEWER, actor="test")
    nope = client.post("/api/v1/workers/backup/wake", headers={"Authorization": f"Bearer {operator}"})
    assert nope.status_code == 404 and "no worker 'backup'" in nope.json()["detail"]
    assert client.post("/api/v1/workers/alerts/wake",
                       headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
    assert client.post("/api/v1/workers/alerts/wake",
                       headers={"Authorization": f"Bearer {operator}"}).status_code == 202
