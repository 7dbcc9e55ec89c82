"""`POST /api/v1/events/verify`: an admin's check of the chain, recorded; refused below admin."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.config.loader import loads
from opsplane.events import service
from opsplane.events.tables import Event
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store


def test_an_admin_verifies_the_chain_and_a_viewer_may_not(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    plane = ControlPlane(loads("platform: {name: shop}\n"), store)
    client = TestClient(create_app(plane, inventory_dir=tmp_path))
    with store.session() as session:
        admin = tokens.create(session, name="admin-t", role=Role.ADMIN, actor="test")
        viewer = tokens.create(session, name="viewer-t", role=Role.VIEWER, actor="test")
        service.record(session, kind="deploy.finished", actor="ana", target="deploy:1", outcome="ok")

    refused = client.post("/api/v1/events/verify", headers={"Authorization": f"Bearer {viewer}"})
    assert refused.status_code == 403
    answer = client.post("/api/v1/events/verify", headers={"Authorization": f"Bearer {admin}"})
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["intact"] and found["checked"] == found["head"]["event_id"]
    with store.session() as session:
        last = session.scalars(select(Event).order_by(Event.id.desc()).limit(1)).one()
    assert last.kind == "events.verified" and last.actor.endswith("admin-t") and last.outcome == "ok"
    store.close()
