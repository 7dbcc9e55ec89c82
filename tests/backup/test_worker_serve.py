"""`serve`'s backup worker in a real control plane: a policy that never ran is backed up at once,
and a backup or verification asked for through the API is done by the worker, each once."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.backup import service
from opsplane.config.loader import loads
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow


def test_requested_work_is_done_by_the_worker_once(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "banner.png").write_bytes(b"\x89PNG" + b"1" * 4000)
    inventory = loads(f"""\
platform: {{name: shop}}
runtime: {{state_dir: {tmp_path}/state}}
backup:
  encryption_key: env:BACKUP_KEY
  repositories: {{local: {{path: {tmp_path}/repo}}}}
  policies:
    uploads: {{engine: files, paths: [{uploads}], schedule: "0 0 1 1 *"}}
""")
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    plane = ControlPlane(inventory, store, environ={"BACKUP_KEY": "serve-test-key-11ab"},
                         inventory_dir=tmp_path)
    with store.session() as session:
        operator = tokens.create(session, name="ops", role=Role.OPERATOR, actor="test")
    with TestClient(create_app(plane)) as client:
        def good() -> list[int]:
            with store.session() as session:
                return [row.id for row in service.good(session, policy="uploads")]

        first = wait_for(good, "the backup of a policy that never ran", timeout=60)
        headers = {"Authorization": f"Bearer {operator}"}
        asked = client.post("/api/v1/backups/uploads/requests", json={"what": "full"}, headers=headers)
        assert asked.status_code == 202, asked.text
        both = wait_for(lambda: len(good()) >= 2 and good(), "the requested backup", timeout=60)
        assert both[1:] == first
        assert client.post("/api/v1/backups/uploads/requests", json={"what": "verify"},
                           headers=headers).status_code == 202

        def verified() -> list[str]:
            with store.session() as session:
                states = [row.state for row in service.restores(session, policy="uploads", purpose="verify")]
            return states if states and "running" not in states else []

        assert wait_for(verified, "the requested verification", timeout=60) == ["succeeded"]
        refused = client.post("/api/v1/backups/uploads/requests", json={"what": "incr"}, headers=headers)
        assert refused.status_code == 409 and "full backups only" in refused.text
        missing = client.post("/api/v1/backups/nope/requests", json={"what": "full"}, headers=headers)
        assert missing.status_code == 404
        status = client.get("/api/v1/backups/status", headers=headers).json()
        assert status[0]["policy"] == "uploads" and status[0]["last_verify"]["state"] == "succeeded"
    with store.session() as session:
        assert len(service.good(session, policy="uploads")) == 2  # each request done once
    store.close()
