"""The incident routes: viewers read, responders acknowledge, update and resolve, and the
token's name is the actor on the record."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.events import service as events
from opsplane.incidents import service
from opsplane.notify import service as notify
from opsplane.notify.models import Notification
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.incidents.factories import T0

INVENTORY = """
platform: {name: shop}
services:
  orders: {port: 8001}
"""


@pytest.fixture
def plane(tmp_path) -> ControlPlane:
    return ControlPlane(loads(INVENTORY), Store.open(f"sqlite:///{tmp_path}/o.db"), clock=ManualClock(T0))


@pytest.fixture
def client(plane: ControlPlane) -> TestClient:
    return TestClient(create_app(plane))


def _headers(plane: ControlPlane, role: Role) -> dict[str, str]:
    with plane.store.session() as session:
        secret = tokens.create(session, name=f"{role.value}-ana", role=role, actor="test")
    return {"Authorization": f"Bearer {secret}"}


def _incident(plane: ControlPlane) -> int:
    with plane.store.session() as session:
        return service.create(session, title="Checkout fails", service="orders", severity="P1",
                              actor="cli:ana", now=T0, settings=plane.inventory.incidents).id


def test_responders_run_an_incident_and_viewers_follow_it(client: TestClient, plane: ControlPlane) -> None:
    number = _incident(plane)
    viewer, responder = _headers(plane, Role.VIEWER), _headers(plane, Role.RESPONDER)
    assert client.post(f"/api/v1/incidents/{number}/ack", headers=viewer).status_code == 403
    acked = client.post(f"/api/v1/incidents/INC-{number}/ack", headers=responder)
    assert acked.status_code == 200 and acked.json()["commander"] == "responder-ana"
    assert client.post(f"/api/v1/incidents/{number}/ack", headers=responder).status_code == 409
    update = client.post(f"/api/v1/incidents/{number}/updates", headers=responder, json={
        "status": "identified", "summary": "Payments time out", "actions": "Rolling back",
        "next_update": "20m", "public": True})
    assert update.status_code == 201, update.text
    assert update.json()["next_update_at"] == "2026-03-03T14:20:00+00:00"
    bad = client.post(f"/api/v1/incidents/{number}/updates", headers=responder,
                      json={"status": "triggered", "summary": "x"})
    assert bad.status_code == 422
    resolved = client.post(f"/api/v1/incidents/{number}/resolve", headers=responder,
                           json={"summary": "Rolled back"})
    assert resolved.json()["status"] == "resolved"
    listed = client.get("/api/v1/incidents", headers=viewer).json()
    assert [i["ref"] for i in listed] == [f"INC-{number}"]
    assert client.get("/api/v1/incidents?open=true", headers=viewer).json() == []
    shown = client.get(f"/api/v1/incidents/{number}", headers=viewer).json()
    assert [u["status"] for u in shown["updates"]] == ["identified", "resolved"]
    assert [e["kind"] for e in shown["timeline"]] == [
        "incident.opened", "incident.acknowledged", "incident.updated", "incident.resolved"]
    with plane.store.session() as session:
        [ack] = events.get_all(session, kind="incident.acknowledged")
    assert ack.actor == "token:responder-ana" and ack.outcome == "success"


def test_unknown_incidents_are_not_found(client: TestClient, plane: ControlPlane) -> None:
    viewer, responder = _headers(plane, Role.VIEWER), _headers(plane, Role.RESPONDER)
    assert client.get("/api/v1/incidents/42", headers=viewer).status_code == 404
    assert client.get("/api/v1/incidents/backend", headers=viewer).status_code == 404
    assert client.post("/api/v1/incidents/42/resolve", headers=responder).status_code == 404


def test_resolving_through_the_api_withdraws_the_pages_not_sent_yet(tmp_path) -> None:
    inventory = loads(INVENTORY + "channels:\n  named:\n    pager: {type: console}\n")
    plane = ControlPlane(inventory, Store.open(f"sqlite:///{tmp_path}/o.db"), clock=ManualClock(T0))
    number = _incident(plane)
    page = Notification(key=f"escalation:{number}:p1:r0:s0:ana:pagerduty", group=f"incident:{number}",
                        severity="P1", summary=f"INC-{number}: Checkout fails")
    with plane.store.session() as session:
        notify.enqueue(session, notification=page, channels=["pager"], settings=inventory.channels, now=T0)

    resolved = TestClient(create_app(plane)).post(f"/api/v1/incidents/{number}/resolve",
                                                  headers=_headers(plane, Role.RESPONDER))

    assert resolved.status_code == 200
    with plane.store.session() as session:
        [row] = notify.get_all(session)
        assert (row.state, row.reason) == ("withdrawn", f"INC-{number} resolved by responder-ana")
