"""The checklist routes of a real `serve`: a viewer reads the lists and the runs, a responder
runs one and gets its report, a viewer may not run one; `config validate` checks the lists."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.config.loader import loads
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.support.cli import Opsplane


def test_viewers_read_and_responders_run_a_checklist(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "quick.yaml").write_text(
        "name: quick\ntitle: Quick round\nsteps:\n"
        "  - {id: incidents, kind: report, read: incidents.open}\n"
        "  - {id: ratio, kind: query, promql: 'vector(0.2)', fail_above: 0.1}\n")
    inventory = loads("platform: {name: shop}\nchecklists:\n  dir: lists\n  schedules:\n"
                      "    quick: {at: '06:00'}\n")
    plane = ControlPlane(inventory, Store.open(f"sqlite:///{tmp_path}/o.db"))
    client = TestClient(create_app(plane, inventory_dir=tmp_path))
    with plane.store.session() as session:
        viewer, responder = ({"Authorization": "Bearer " + tokens.create(session, name=n, role=r, actor="t")}
                             for n, r in (("vera", Role.VIEWER), ("rob", Role.RESPONDER)))
    listed = {c["name"]: c for c in client.get("/api/v1/checklists", headers=viewer).json()}
    assert listed["quick"]["cron"] == "0 6 * * *" and listed["morning"]["cron"] == "0 9 * * *"
    assert client.post("/api/v1/checklists/quick/runs", headers=viewer).status_code == 403
    ran = client.post("/api/v1/checklists/quick/runs", headers=responder)
    assert ran.status_code == 201, ran.text
    report = ran.json()
    outcomes = [(i["step"], i["outcome"]) for i in report["items"]]
    assert outcomes == [("incidents", "ok"), ("ratio", "failed")]
    assert (report["state"], report["trigger"], report["requested_by"]) == ("failed", "api", "token:rob")
    [run] = client.get("/api/v1/checklists/runs", headers=viewer).json()
    assert (run["id"], run["failed"]) == (report["id"], 1)
    assert run["not_ok"] == [{"step": "ratio", "outcome": "failed"}]
    shown = client.get(f"/api/v1/checklists/runs/{run['id']}", headers=viewer).json()
    assert shown["items"] == report["items"]
    assert client.get("/api/v1/checklists/runs/999", headers=viewer).status_code == 404
    assert client.post("/api/v1/checklists/evening/runs", headers=responder).status_code == 404
    plane.store.close()


def test_config_validate_checks_the_checklists(tmp_path: Path) -> None:
    opsplane = Opsplane(tmp_path, {"platform": {"name": "shop"},
                                   "checklists": {"timezone": "Europe/Berlin"}})
    assert "5 checklists" in opsplane("config", "validate").stdout
    opsplane = Opsplane(tmp_path, {"platform": {"name": "shop"},
                                   "checklists": {"schedules": {"evening": {"at": "20:00"}}}})
    refused = opsplane("config", "validate", code=3)
    assert "opsplane.yaml:5:5: checklists.schedules.evening" in refused.stderr
    assert "no checklist named 'evening'" in refused.stderr
