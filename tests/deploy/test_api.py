"""The deploy routes: viewers read deploys, operators ask for them (a dry run answers the plan
and records nothing), promote, pause, resume, abort, approve and roll back; refusals answer 409
with the reason, unknown deploys 404, and the token's name is the actor on the record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.deploy import service
from opsplane.drivers.runtime import InstanceStatus, RuntimeNotice
from opsplane.events import service as events
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store

TUESDAY = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # inside production's window
INVENTORY = """
platform: {name: shop}
environments: {production: {}, staging: {}}
services:
  catalog:
    port: 8001
    proxy: edge
    run: {argv: [catalog], version: v1, instances: 2}
  orders:
    port: 8002
    run: {argv: [orders], version: v1}
proxies:
  edge: {engine: nginx, port: 8080}
deploy:
  canary: {steps: [10, 50, 100]}
  windows:
    production:
      windows: [{days: [tue, wed, thu], start: "10:00", end: "16:00"}]
    staging: {approvals: 1}
  services:
    catalog: {releases: [v1, v2, v2-slow]}
    orders: {releases: [v1, v2]}
"""


class StandInRuntime:
    """What the routes read of a runtime: catalog's two instances and orders' one, on v1."""

    base_dir = Path(".")

    def status(self) -> list[InstanceStatus]:
        started = TUESDAY - timedelta(hours=1)
        return [InstanceStatus("catalog", 1, 4242, 8101, "running", started, 0, version="v1"),
                InstanceStatus("catalog", 2, 4243, 8102, "running", started, 0, version="v1"),
                InstanceStatus("orders", 1, 4244, 8201, "running", started, 0, version="v1")]

    def releases(self) -> dict[str, str]:
        return {"catalog": "v1", "orders": "v1"}

    async def watch(self) -> AsyncIterator[RuntimeNotice]:  # followed only by a started plane
        return
        yield


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(TUESDAY)


@pytest.fixture
def plane(tmp_path: Path, clock: ManualClock) -> ControlPlane:
    return ControlPlane(loads(INVENTORY), Store.open(f"sqlite:///{tmp_path}/o.db"), clock=clock,
                        runtime=StandInRuntime())  # type: ignore[arg-type]


@pytest.fixture
def client(plane: ControlPlane) -> TestClient:
    return TestClient(create_app(plane))


def headers(plane: ControlPlane, role: Role, name: str | None = None) -> dict[str, str]:
    with plane.store.session() as session:
        secret = tokens.create(session, name=name or f"{role.value}-ana", role=role, actor="test")
    return {"Authorization": f"Bearer {secret}"}


CANARY = {"service": "catalog", "version": "v2", "strategy": "canary"}


def test_a_dry_run_answers_the_plan_and_records_nothing(client: TestClient, plane: ControlPlane) -> None:
    operator = headers(plane, Role.OPERATOR)
    answer = client.post("/api/v1/deploys", headers=operator, json={**CANARY, "dry_run": True})
    assert answer.status_code == 201, answer.text
    plan = answer.json()
    assert plan["dry_run"] is True
    assert (plan["from"], plan["to"], plan["strategy"], plan["instances"]) == ("v1", "v2", "canary", 2)
    assert [s["kind"] for s in plan["steps"]] == ["precheck", "start", "shift", "analyse", "shift", "analyse",
                                                  "shift", "settle", "release", "postcheck"]
    assert plan["steps"][2]["text"] == "send 10 % of requests to the new release and prove it on live answers"
    assert plan["window"]["allowed"] is True
    assert client.get("/api/v1/deploys", headers=operator).json() == []
    with plane.store.session() as session:
        assert events.get_all(session, kind="deploy.*") == []


def test_operators_ask_for_a_deploy_and_viewers_follow_it(client: TestClient, plane: ControlPlane) -> None:
    viewer, operator = headers(plane, Role.VIEWER), headers(plane, Role.OPERATOR)
    assert client.post("/api/v1/deploys", headers=viewer, json=CANARY).status_code == 403
    responder = headers(plane, Role.RESPONDER)
    assert client.post("/api/v1/deploys", headers=responder, json=CANARY).status_code == 403

    asked = client.post("/api/v1/deploys", headers=operator, json={**CANARY, "initial_percent": 5})
    assert asked.status_code == 201, asked.text
    deploy = asked.json()
    assert deploy["state"] == "queued" and deploy["environment"] == "production"
    assert deploy["requested_by"] == "token:operator-ana"
    assert [s.get("percent") for s in deploy["steps"] if s["kind"] == "shift"] == [5, 10, 50, 100]

    listed = client.get("/api/v1/deploys", headers=viewer).json()
    assert [d["id"] for d in listed] == [deploy["id"]]
    assert client.get("/api/v1/deploys?service=orders", headers=viewer).json() == []
    shown = client.get(f"/api/v1/deploys/{deploy['id']}", headers=viewer).json()
    assert shown["to"] == "v2" and shown["verdicts"] == [] and shown["step"] == 0
    with plane.store.session() as session:
        [requested] = events.get_all(session, kind="deploy.requested")
    assert requested.actor == "token:operator-ana" and requested.target == f"deploy:{deploy['id']}"


@pytest.mark.parametrize(("body", "says"), [
    ({"service": "catalog", "version": "v9"}, "release 'v9' of catalog is not built"),
    ({"service": "catalgo", "version": "v2"}, "unknown service 'catalgo'; did you mean 'catalog'?"),
    ({"service": "catalog", "version": "v1"}, "catalog already runs v1"),
    ({"service": "orders", "version": "v2", "strategy": "canary"}, "orders has none (`proxy:`"),
    ({"service": "orders", "version": "v2", "initial_percent": 5}, "--initial-percent is for canary"),
])
def test_a_refused_deploy_answers_409_with_the_reason(client: TestClient, plane: ControlPlane,
                                                      body: dict[str, object], says: str) -> None:
    answer = client.post("/api/v1/deploys", headers=headers(plane, Role.OPERATOR), json=body)
    assert answer.status_code == 409, answer.text
    assert says in answer.json()["detail"]
    assert answer.json()["problems"] == []


def test_outside_the_window_a_deploy_is_refused_unless_overridden(client: TestClient, plane: ControlPlane,
                                                                  clock: ManualClock) -> None:
    operator = headers(plane, Role.OPERATOR)
    clock.advance(3 * 3600)  # Tuesday 17:00, after the window
    refused = client.post("/api/v1/deploys", headers=operator, json=CANARY)
    assert refused.status_code == 409
    assert "override with --override --reason TEXT" in refused.json()["detail"]
    overridden = client.post("/api/v1/deploys", headers=operator,
                             json={**CANARY, "override_reason": "INC-7 hotfix"})
    assert overridden.status_code == 201
    assert overridden.json()["params"]["override"]["reason"] == "INC-7 hotfix"
    second = client.post("/api/v1/deploys", headers=operator, json={**CANARY, "override_reason": "again"})
    assert second.status_code == 409
    assert f"catalog already has deploy {overridden.json()['id']} (queued)" in second.json()["detail"]


def test_an_unknown_environment_is_a_bad_request_not_a_failure(client: TestClient,
                                                               plane: ControlPlane) -> None:
    answer = client.post("/api/v1/deploys", headers=headers(plane, Role.OPERATOR),
                         json={**CANARY, "environment": "moon"})
    assert answer.status_code == 422
    assert "unknown environment 'moon'" in answer.json()["detail"]


def test_unknown_deploys_are_not_found(client: TestClient, plane: ControlPlane) -> None:
    viewer, operator = headers(plane, Role.VIEWER), headers(plane, Role.OPERATOR)
    missing = client.get("/api/v1/deploys/41", headers=viewer)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no deploy 41; `opsplane deploy history` lists them"
    assert client.post("/api/v1/deploys/41/abort", headers=operator).status_code == 404
    assert client.get(f"/api/v1/deploys/{2**63}", headers=viewer).status_code == 422  # no row has it
    assert client.post("/api/v1/deploys/1/restart", headers=operator).status_code == 422


def test_operators_pause_resume_promote_and_abort(client: TestClient, plane: ControlPlane,
                                                  clock: ManualClock) -> None:
    operator, responder = headers(plane, Role.OPERATOR), headers(plane, Role.RESPONDER)
    number = client.post("/api/v1/deploys", headers=operator, json=CANARY).json()["id"]
    with plane.store.session() as session:  # serve's worker took it to its first analysis
        row = service.get(session, number)
        service.transition(session, row, "running", actor="system:deploy", now=clock.now())
        for _ in range(3):
            service.step_done(session, row, actor="system:deploy", now=clock.now())

    assert client.post(f"/api/v1/deploys/{number}/pause", headers=responder).status_code == 403
    paused = client.post(f"/api/v1/deploys/{number}/pause", headers=operator)
    assert paused.status_code == 200
    assert paused.json()["deploy"]["state"] == "paused"
    assert paused.json()["message"].startswith(f"deploy {number} paused")
    again = client.post(f"/api/v1/deploys/{number}/pause", headers=operator)
    assert again.status_code == 409
    assert again.json()["detail"] == f"deploy {number} is paused; pause needs it queued or running"

    promoted = client.post(f"/api/v1/deploys/{number}/promote", headers=operator).json()
    assert promoted["deploy"]["state"] == "running" and promoted["deploy"]["step"] == 4
    refused = client.post(f"/api/v1/deploys/{number}/promote", headers=operator)
    assert refused.status_code == 409
    assert "not at an analysis step (it is at: shift)" in refused.json()["detail"]

    aborted = client.post(f"/api/v1/deploys/{number}/abort", headers=operator).json()
    assert aborted["deploy"]["state"] == "rolling_back"
    assert aborted["message"] == f"deploy {number} is rolling back to v1"
    with plane.store.session() as session:
        kinds = [(e.kind, e.actor) for e in reversed(events.get_all(session, kind="deploy.*"))]
    assert ("deploy.paused", "token:operator-ana") in kinds
    assert ("deploy.rolling_back", "token:operator-ana") in kinds


def test_approvals_come_from_another_operator(client: TestClient, plane: ControlPlane) -> None:
    ana, ben = headers(plane, Role.OPERATOR), headers(plane, Role.OPERATOR, name="operator-ben")
    asked = client.post("/api/v1/deploys", headers=ana,
                        json={"service": "orders", "version": "v2", "environment": "staging"}).json()
    assert asked["state"] == "awaiting_approval"
    own = client.post(f"/api/v1/deploys/{asked['id']}/approve", headers=ana)
    assert own.status_code == 409
    assert own.json()["detail"] == (f"token:operator-ana asked for deploy {asked['id']}; "
                                    "another person must approve it")
    approved = client.post(f"/api/v1/deploys/{asked['id']}/approve", headers=ben).json()
    assert approved["deploy"]["state"] == "queued"
    assert approved["deploy"]["approvals"][0]["by"] == "token:operator-ben"


def test_rolling_back_a_service_aborts_its_deploy_or_undoes_the_last_one(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    operator, responder = headers(plane, Role.OPERATOR), headers(plane, Role.RESPONDER)
    assert client.post("/api/v1/services/catalog/rollback", headers=responder).status_code == 403
    nothing = client.post("/api/v1/services/catalog/rollback", headers=operator)
    assert nothing.status_code == 409
    assert nothing.json()["detail"] == "catalog has no active deploy and no successful one to undo"
    assert client.post("/api/v1/services/nope/rollback", headers=operator).status_code == 404

    number = client.post("/api/v1/deploys", headers=operator, json=CANARY).json()["id"]
    dropped = client.post("/api/v1/services/catalog/rollback", headers=operator).json()
    assert dropped == {"deploy": number, "message": f"deploy {number} aborted; nothing had changed"}

    with plane.store.session() as session:  # a later deploy that went all the way
        row = service.get(session, client.post("/api/v1/deploys", headers=operator, json=CANARY).json()["id"])
        service.transition(session, row, "succeeded", actor="system:deploy", now=clock.now())
        done = row.id
    undone = client.post("/api/v1/services/catalog/rollback", headers=operator).json()
    assert undone["message"] == f"deploy {undone['deploy']}: catalog goes back from v2 to v1"
    back = client.get(f"/api/v1/deploys/{undone['deploy']}", headers=operator).json()
    assert (back["strategy"], back["from"], back["to"]) == ("rollback", "v2", "v1")
    assert back["params"]["undoes"] == done
    assert back["requested_by"] == "token:operator-ana"


def test_the_document_names_each_deploy_routes_role(client: TestClient, plane: ControlPlane) -> None:
    document = client.get("/api/v1/openapi.json", headers=headers(plane, Role.VIEWER)).json()
    roles = {(path, method): spec["x-opsplane-role"] for path, methods in document["paths"].items()
             for method, spec in methods.items() if "deploy" in path or "rollback" in path}
    assert roles == {("/api/v1/deploys", "get"): "viewer", ("/api/v1/deploys", "post"): "operator",
                     ("/api/v1/deploys/{deploy_id}", "get"): "viewer",
                     ("/api/v1/deploys/{deploy_id}/{action}", "post"): "operator",
                     ("/api/v1/services/{service_name}/rollback", "post"): "operator"}
    refusals = document["paths"]["/api/v1/deploys/{deploy_id}/{action}"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(refusals)
    assert not [path for path in document["paths"] if path.startswith("/ui")]
