"""The API and the dashboard: every route but the public ones demands a token with the right
role, as a bearer header (API) or as the dashboard's session cookie (pages)."""

from __future__ import annotations

import re

import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.deps import RoleGuard
from opsplane.auth.service import Role
from opsplane.backup import service as backups
from opsplane.checklists import service as checklists
from opsplane.config.loader import loads
from opsplane.deploy import service as deploys
from opsplane.gameday import service as gamedays
from opsplane.gameday.models import Scenario
from opsplane.health.models import ProbeResult, State
from opsplane.incidents import service as incidents
from opsplane.reports import service as reports
from opsplane.reports.models import Report
from opsplane.runbooks import service as runbooks
from opsplane.runbooks.models import Runbook
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from opsplane.web.session import COOKIE, SessionGuard

# The API's own health and metrics, what a browser needs before signing in, and the public
# status page with its JSON and stylesheet.
PUBLIC = {"/health", "/metrics", "/", "/ui/login", "/ui/static/dashboard.css",
          "/status", "/status.json", "/status/static/status.css"}
INVENTORY = """
platform: {name: shop}
services:
  backend: {port: 8000, depends_on: [postgres-main], checks: [{type: http, path: /health/}],
            metrics_path: /metrics}
databases:
  postgres-main: {port: 5432, checks: [{type: postgres}]}
backup:
  encryption_key: env:BACKUP_KEY
  repositories: {local: {}}
  policies:
    postgres-main: {data_dir: /var/lib/postgresql/15/main}
runbooks: {dir: runbooks}
slos:
  backend:
    service: backend
    objective: 99.9%
    sli: {events: {bad: 'http_requests_total{status=~"5.."}', total: http_requests_total}}
"""
RUNBOOK = "name: backend\ntitle: Backend\nsteps:\n  - {id: look, kind: note, text: look at it}\n"


@pytest.fixture
def plane(tmp_path) -> ControlPlane:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "backend.yaml").write_text(RUNBOOK)
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    return ControlPlane(loads(INVENTORY), store)


@pytest.fixture
def client(plane: ControlPlane, tmp_path) -> TestClient:
    # No `with`: the lifespan (and so the scheduler) does not start; routes read plane state.
    return TestClient(create_app(plane, inventory_dir=tmp_path))


def token(plane: ControlPlane, role: Role) -> str:
    with plane.store.session() as session:
        return tokens.create(session, name=f"{role.value}-t", role=role, actor="test")


def api_routes(app) -> list[APIRoute]:
    return [r for r in app.routes if isinstance(r, APIRoute)]


# Required query parameters, so that an admitted request can succeed.
PARAMS: dict[str, dict[str, str]] = {
    "/api/v1/query": {"query": "vector(1)"},
    "/api/v1/query_range": {"query": "vector(1)", "start": "0", "end": "60", "step": "15s"},
}
# Dashboard forms that need fields to succeed.
FORMS: dict[str, dict[str, str]] = {
    "/ui/incidents/{incident_id}/updates": {"status": "investigating", "summary": "Looking."},
}


def concrete(path: str) -> str:
    # Path parameters name a real component (or incident 1, deploy 1, backup 1, backup policy
    # postgres-main and an action its state allows), so an admitted request can succeed.
    named = (path.replace("{incident_id}", "1").replace("{deploy_id}", "1").replace("{backup_id}", "1")
             .replace("{run_id}", "1").replace("{gameday_id}", "1").replace("{report_id}", "1")
             .replace("{policy}", "postgres-main").replace("{action}", "abort"))
    return re.sub(r"\{[^}]+\}", "backend", named)


def incident_and_deploy(plane: ControlPlane) -> None:
    """Incident 1, deploy 1 (queued, so an operator may abort it), backup 1, runbook run 1,
    checklist run 1, game day 1 and report 1, for the routes that name one."""
    with plane.store.session() as session:
        incidents.create(session, title="checkout fails", service="backend", severity="P1",
                         actor="test", now=plane.clock.now(), settings=plane.inventory.incidents)
        deploys.create(session, service="backend", environment="production", strategy="rolling",
                       from_version="v1", to_version="v2", plan=[{"kind": "precheck"}], params={},
                       approvals_needed=0, actor="test", now=plane.clock.now())
        backups.begin(session, policy="postgres-main", component="postgres-main", engine="pgbackrest",
                      kind="full", parent_id=None, trigger="manual", actor="test", now=plane.clock.now())
        runbooks.create(session, runbook=Runbook.model_validate(yaml.safe_load(RUNBOOK)), parameters={},
                        incident_id=None, requested_by="test", mode="manual", now=plane.clock.now())
        checklists.begin(session, runbook=Runbook.model_validate(yaml.safe_load(RUNBOOK)), trigger="api",
                         requested_by="test", slot=None, now=plane.clock.now())
        gamedays.create(session, name="kill-backend", scenario=Scenario(kind="kill", target="backend"),
                        trigger="cli", actor="test", now=plane.clock.now(), max_duration=60.0)
        reports.save(session, Report(job="db-report", subject="shop", summary="nothing found"), trigger="cli",
                     requested_by="test", slot=None, started_at=plane.clock.now(), now=plane.clock.now())


def guards_of(route: APIRoute) -> list[RoleGuard | SessionGuard]:
    return [d.call for d in route.dependant.dependencies
            if isinstance(d.call, RoleGuard | SessionGuard)]


def test_every_route_outside_the_public_ones_declares_a_role(client: TestClient) -> None:
    routes = api_routes(client.app)
    assert {r.path for r in routes} >= {"/health", "/metrics", "/api/v1/services",
                                        "/api/v1/health", "/api/v1/events", "/ui/",
                                        "/ui/services/{name}", "/ui/events"}
    for route in routes:
        guards = guards_of(route)
        if route.path in PUBLIC:
            assert not guards, route.path
        else:
            assert len(guards) == 1, f"{route.path} declares no role"


def test_every_protected_route_refuses_no_token_bad_token_and_a_lower_role(
    client: TestClient, plane: ControlPlane
) -> None:
    lowest_below = {Role.RESPONDER: Role.VIEWER, Role.OPERATOR: Role.RESPONDER,
                    Role.ADMIN: Role.OPERATOR}
    issued = {role: token(plane, role) for role in Role}
    incident_and_deploy(plane)
    for route in api_routes(client.app):
        if route.path in PUBLIC:
            continue
        [guard] = guards_of(route)
        if isinstance(guard, SessionGuard):
            continue  # the next test
        for method in route.methods:
            url = concrete(route.path)
            params = PARAMS.get(route.path)
            missing = client.request(method, url, params=params)
            assert missing.status_code == 401, (method, url)
            assert missing.headers["www-authenticate"].startswith("Bearer")
            forged = client.request(method, url, params=params,
                                    headers={"Authorization": "Bearer ops_forged"})
            assert forged.status_code == 401, (method, url)
            if guard.role in lowest_below:
                low = issued[lowest_below[guard.role]]
                denied = client.request(method, url, params=params,
                                        headers={"Authorization": f"Bearer {low}"})
                assert denied.status_code == 403, (method, url)
            ok = client.request(method, url, params=params,
                                headers={"Authorization": f"Bearer {issued[guard.role]}"})
            if method == "GET":
                assert ok.status_code < 400, (method, url, ok.text)
            else:  # admitted; the change itself may be refused (no runtime runs here)
                assert ok.status_code not in (401, 403), (method, url, ok.text)


def test_every_page_sends_no_cookie_a_forged_one_and_a_lower_role_to_sign_in(
    client: TestClient, plane: ControlPlane
) -> None:
    lowest_below = {Role.RESPONDER: Role.VIEWER, Role.OPERATOR: Role.RESPONDER,
                    Role.ADMIN: Role.OPERATOR}
    issued = {role: token(plane, role) for role in Role}
    incident_and_deploy(plane)
    pages = [r for r in api_routes(client.app) if r.path not in PUBLIC
             and isinstance(guards_of(r)[0], SessionGuard)]
    assert len(pages) >= 5

    def session_of(role: Role) -> str:
        """A fresh session's cookie (signing out, one of the pages, ends the one it is sent with)."""
        client.cookies.clear()
        assert client.post("/ui/login", data={"token": issued[role]},
                           follow_redirects=False).status_code == 303
        return str(client.cookies[COOKIE])

    for route in pages:
        [guard] = guards_of(route)
        for method in route.methods:
            url = concrete(route.path)
            for cookie in (None, "forged-session-id", issued[guard.role]):  # a token is no session
                client.cookies.clear()
                if cookie:
                    client.cookies.set(COOKIE, cookie)
                refused = client.request(method, url, follow_redirects=False)
                assert refused.status_code == 303, (method, url, cookie)
                assert refused.headers["location"].startswith("/ui/login"), (method, url)
            if guard.role in lowest_below:
                client.cookies.set(COOKIE, session_of(lowest_below[guard.role]))
                assert client.request(method, url).status_code == 403, (method, url)
            client.cookies.set(COOKIE, session_of(guard.role))
            ok = client.request(method, url, data=FORMS.get(route.path), follow_redirects=False)
            assert ok.status_code < 400, (method, url, ok.text)
            if method == "GET":
                assert ok.status_code == 200, (method, url)
    client.cookies.clear()


def test_public_routes_answer_without_a_token(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 200
    assert "opsplane_checks" in client.get("/metrics").text
    # not started: /health says so with 503 rather than pretending
    assert client.get("/health").status_code == 503
    assert client.get("/ui/login").status_code == 200
    assert client.get("/ui/static/dashboard.css").status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"


def test_revoked_token_is_refused(client: TestClient, plane: ControlPlane) -> None:
    secret = token(plane, Role.ADMIN)
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/whoami", headers=headers).json() == {"name": "admin-t", "role": "admin"}
    with plane.store.session() as session:
        tokens.revoke(session, name="admin-t", actor="test")
    assert client.get("/api/v1/whoami", headers=headers).status_code == 401


def test_health_route_reports_latest_results_with_root_cause(client: TestClient, plane: ControlPlane) -> None:
    plane.latest["postgres-main/postgres"] = ProbeResult(State.CRITICAL, "refuses connections")
    plane.latest["backend/http"] = ProbeResult(State.CRITICAL, "HTTP 503 in 3 ms")
    headers = {"Authorization": f"Bearer {token(plane, Role.VIEWER)}"}
    body = client.get("/api/v1/health", headers=headers).json()
    assert body["state"] == "CRITICAL" and body["exit_code"] == 2
    backend = next(s for s in body["services"] if s["name"] == "backend")
    assert backend["reason"] == ("http: HTTP 503 in 3 ms; "
                                 "depends on postgres-main, which refuses connections")
    assert backend["root_causes"] == [{"component": "postgres-main", "path": ["postgres-main"],
                                       "reason": "refuses connections"}]
    services = client.get("/api/v1/services", headers=headers).json()
    assert [s["name"] for s in services] == ["backend", "postgres-main"]
    assert services[0]["depends_on"] == ["postgres-main"] and services[0]["state"] == "CRITICAL"
    assert client.get("/api/v1/health?service=nope", headers=headers).status_code == 404


async def test_state_changes_are_taken_a_chunk_at_a_time_and_stop_drains_the_rest(
    plane: ControlPlane,
) -> None:
    from opsplane.events import service as events
    from opsplane.health.transitions import Transition
    from opsplane.health.worker import WRITE_CHUNK

    now = plane.clock.now()
    plane.health.pending = [Transition(f"svc-{i}/http", f"svc-{i}", None, State.OK, "up", now)
                      for i in range(2 * WRITE_CHUNK + 7)]
    assert len(plane.health.take_pending()) == WRITE_CHUNK  # one transaction's worth at a time
    await plane.stop()  # drains what is left
    with plane.store.session() as session:
        written = events.get_all(session, kind="check.state_changed", limit=5000)
    assert len(written) == WRITE_CHUNK + 7
