"""The on-call API: reads for viewers, overrides and handoff notes for responders, recorded
with the token as actor."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.events import service as events
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.oncall.factories import T0, oncall_data


@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    text = yaml.safe_dump({"platform": {"name": "shop"}, "oncall": oncall_data()})
    return ControlPlane(loads(text), Store.open(f"sqlite:///{tmp_path}/o.db"), clock=ManualClock(T0))


def _client(plane: ControlPlane, role: Role) -> TestClient:
    with plane.store.session() as session:
        secret = tokens.create(session, name=f"{role.value}-t", role=role, actor="test")
    return TestClient(create_app(plane), headers={"Authorization": f"Bearer {secret}"})


def test_a_viewer_reads_who_is_on_call_the_shifts_and_the_escalation(plane: ControlPlane) -> None:
    client = _client(plane, Role.VIEWER)
    now = client.get("/api/v1/oncall").json()
    assert [x["person"] for x in now["schedules"][0]["layers"]] == ["ana", "ben"]
    shifts = client.get("/api/v1/oncall/shifts", params={"weeks": 2}).json()
    assert [(s["layer"], s["person"]) for s in shifts] == [
        ("primary", "ana"), ("secondary", "ben"), ("primary", "ben"), ("secondary", "cleo"),
        ("primary", "cleo"), ("secondary", "ana")]
    plan = client.get("/api/v1/oncall/escalation", params={"severity": "P1"}).json()
    assert [s["offset_seconds"] for s in plan["steps"]] == [0, 900, 1800]
    assert client.get("/api/v1/oncall/escalation", params={"severity": "P9"}).status_code == 422
    refused = client.post("/api/v1/oncall/handoffs", json={"schedule": "platform", "note": "x"})
    assert refused.status_code == 403


def test_a_responder_records_an_override_and_a_handoff_note(plane: ControlPlane) -> None:
    client = _client(plane, Role.RESPONDER)
    made = client.post("/api/v1/oncall/overrides", json={
        "schedule": "platform", "layer": "primary", "person": "dan",
        "start": T0.isoformat(), "end": (T0 + timedelta(hours=4)).isoformat()})
    assert made.status_code == 201, made.text
    note = client.post("/api/v1/oncall/handoffs", json={"schedule": "platform", "note": "all quiet"})
    assert note.status_code == 201 and note.json()["on_call"]["primary"] == "dan"
    now = client.get("/api/v1/oncall").json()["schedules"][0]
    assert now["layers"][0]["person"] == "dan" and now["handoff"]["note"] == "all quiet"
    with plane.store.session() as session:
        actors = {e.kind: e.actor for e in events.get_all(session, kind="oncall.*")}
    assert actors == {"oncall.override": "token:responder-t", "oncall.handoff": "token:responder-t"}


def test_an_override_for_an_unknown_person_is_a_422_with_the_reason(plane: ControlPlane) -> None:
    client = _client(plane, Role.RESPONDER)
    refused = client.post("/api/v1/oncall/overrides", json={
        "schedule": "platform", "layer": "primary", "person": "zoe",
        "start": T0.isoformat(), "end": (T0 + timedelta(hours=4)).isoformat()})
    assert refused.status_code == 422
    assert "unknown person 'zoe'" in refused.json()["detail"]
