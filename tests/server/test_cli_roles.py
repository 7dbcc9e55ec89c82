"""Commands that change something check a role, as API routes do: the token in
OPSPLANE_TOKEN when one is set, else the local user's OPSPLANE_LOCAL_ROLE (admin unless set).
A refusal changes nothing, exits 3 and says which role was needed; what is done is recorded
with the actor who did it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import Opsplane

pytestmark = pytest.mark.slow

INVENTORY = {"platform": {"name": "shop"}, "services": {"orders": {"port": 8001}}}
OPEN = ("incident", "open", "--service", "orders", "--severity", "P2", "--title", "slow checkouts")


def _token(opsplane: Opsplane, role: str) -> str:
    created = opsplane("token", "create", "--name", f"{role}-1", "--role", role, "--json")
    return str(json.loads(created.stdout)["token"])


def test_the_local_user_is_admin_unless_told_otherwise(tmp_path: Path) -> None:
    opsplane = Opsplane(tmp_path, INVENTORY)
    opened = json.loads(opsplane(*OPEN, "--json").stdout)
    assert opened["opened_by"] == "cli:ana"

    opsplane.env["OPSPLANE_LOCAL_ROLE"] = "viewer"
    refused = opsplane(*OPEN, code=3)
    assert "needs the responder role; cli:ana (OPSPLANE_LOCAL_ROLE) has viewer" in refused.stderr
    assert len(opsplane.json("incident", "list")) == 1  # nothing changed; reading still works
    opsplane("token", "create", "--role", "viewer", code=3)

    opsplane.env["OPSPLANE_LOCAL_ROLE"] = "root"
    assert "expected one of viewer, responder, operator, admin" in opsplane(*OPEN, code=3).stderr


def test_a_token_acts_with_its_own_role_and_name(tmp_path: Path) -> None:
    opsplane = Opsplane(tmp_path, INVENTORY)
    viewer, responder = _token(opsplane, "viewer"), _token(opsplane, "responder")

    opsplane.env["OPSPLANE_TOKEN"] = viewer
    assert "needs the responder role; token 'viewer-1' has viewer" in opsplane(*OPEN, code=3).stderr

    opsplane.env["OPSPLANE_TOKEN"] = responder
    opened = json.loads(opsplane(*OPEN, "--json").stdout)
    assert opened["opened_by"] == "token:responder-1"
    acked = json.loads(opsplane("incident", "ack", str(opened["id"]), "--json").stdout)
    assert acked["commander"] == "responder-1"
    assert "needs the admin role" in opsplane("token", "revoke", "viewer-1", code=3).stderr

    opsplane.env["OPSPLANE_TOKEN"] = "ops_not-a-real-token"
    assert "OPSPLANE_TOKEN: " in opsplane(*OPEN, code=3).stderr
