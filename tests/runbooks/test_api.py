"""The runbook routes: viewers read runbooks and runs; a responder starts a run, which the
control plane drives with nobody at it; an approval is refused to the requester and to a role
short of the step's, and accepted from another person with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.config.loader import loads
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.support.polling import wait_for

RUNBOOK = """
name: drain
title: Drain the gateway
parameters: {service: {of: service, default: gateway}}
steps:
  - {id: say, kind: note, text: "draining ${service}"}
  - {id: ok, kind: approve, role: operator}
  - {id: done, kind: note, text: drained}
"""


@pytest.fixture
def plane(tmp_path: Path) -> ControlPlane:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "drain.yaml").write_text(RUNBOOK)
    inventory = loads("platform: {name: shop}\nservices: {gateway: {port: 8000}}\n"
                      "runbooks: {dir: runbooks}\n")
    return ControlPlane(inventory, Store.open(f"sqlite:///{tmp_path}/o.db"))


@pytest.fixture
def client(plane: ControlPlane, tmp_path: Path) -> TestClient:
    return TestClient(create_app(plane, inventory_dir=tmp_path))


def bearer(plane: ControlPlane, role: Role, name: str) -> dict[str, str]:
    with plane.store.session() as session:
        return {"Authorization": f"Bearer {tokens.create(session, name=name, role=role, actor='test')}"}


def settled(client: TestClient, headers: dict[str, str], run_id: int, state: str) -> dict:  # type: ignore[type-arg]
    def read() -> dict | None:  # type: ignore[type-arg]
        found = client.get(f"/api/v1/runbook-runs/{run_id}", headers=headers).json()
        return found if found["state"] == state else None  # type: ignore[no-any-return]

    return wait_for(read, f"run {run_id} to be {state}", timeout=10)  # type: ignore[no-any-return]


def test_a_started_run_goes_on_after_a_second_persons_approval(client: TestClient,
                                                               plane: ControlPlane) -> None:
    viewer = bearer(plane, Role.VIEWER, "vic")
    ana, bob = bearer(plane, Role.OPERATOR, "ana"), bearer(plane, Role.OPERATOR, "bob")
    responder = bearer(plane, Role.RESPONDER, "rita")
    listed = [r["name"] for r in client.get("/api/v1/runbooks", headers=viewer).json()]
    # the inventory's and those opsplane ships
    assert "drain" in listed and "service-down" in listed and "high-error-rate" in listed
    assert client.get("/api/v1/runbooks/nope", headers=viewer).status_code == 404
    assert client.post("/api/v1/runbooks/drain/runs", headers=viewer, json={}).status_code == 403
    assert client.post("/api/v1/runbooks/drain/runs", headers=ana, json={"parameters": {"colour": "red"}}
                       ).status_code == 422

    started = client.post("/api/v1/runbooks/drain/runs", headers=ana, json={})
    assert started.status_code == 201, started.text
    run = settled(client, viewer, started.json()["id"], "awaiting_approval")
    assert run["state"] == "awaiting_approval" and run["current_step"] == "ok"
    assert [s["step"] for s in run["steps"]] == ["say"] and run["steps"][0]["output"] == "draining gateway"

    url = f"/api/v1/runbook-runs/{run['id']}/approve"
    assert client.post(url, headers=ana, json={"step": "ok"}).status_code == 409  # ana asked for it
    assert client.post(url, headers=responder, json={"step": "ok"}).status_code == 403  # short of operator
    approved = client.post(url, headers=bob, json={"step": "ok"})
    assert approved.status_code == 200, approved.text
    run = settled(client, viewer, run["id"], "succeeded")
    assert [(s["step"], s["outcome"], s["approved_by"]) for s in run["steps"]] == [
        ("say", "ok", None), ("ok", "yes", "token:bob"), ("done", "ok", None)]
