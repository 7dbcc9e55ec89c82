"""The dashboard through HTTP: sign-in, every page, escaping, and what each page tells."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.events import service as events
from opsplane.health.models import ProbeResult, State
from opsplane.server import ControlPlane
from opsplane.web import signin
from opsplane.web.instances import RuntimeView
from tests.web.conftest import COMPONENTS, StandInRuntime, make_token

PAGES = ["/ui/", "/ui/services/catalog", "/ui/dependencies", "/ui/events", "/ui/instances"]


def rows(html: str) -> list[str]:
    return re.findall(r'data-component="([^"]+)"', html)


# --- signing in -----------------------------------------------------------------------------


def test_every_page_sends_a_browser_without_a_session_to_sign_in(client: TestClient) -> None:
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/ui/login?next={path}"
    assert client.get("/").headers["location"] == "/ui/"
    form = client.get("/ui/login?next=/ui/events")
    assert form.status_code == 200
    assert 'name="token"' in form.text and 'value="/ui/events"' in form.text


def test_a_wrong_token_gets_the_form_again_with_401_and_no_cookie(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    for wrong in ("ops_not-a-real-token", "hunter2"):
        answer = client.post("/ui/login", data={"token": wrong})
        assert answer.status_code == 401
        assert "unknown or revoked" in answer.text and 'name="token"' in answer.text
        assert "set-cookie" not in answer.headers
    assert client.post("/ui/login", data={"token": "  "}).status_code == 400
    assert client.get("/ui/").status_code == 303
    clock.advance(60)  # the window of the address's failures ends: one event says them all
    signin.write(plane.store, signin.limiter_for(client.app).due())  # type: ignore[arg-type]
    with plane.store.session() as session:
        [failed] = events.get_all(session, kind="ui.login_failed")
    assert failed.outcome == "denied" and failed.details["count"] == 2
    assert "ops_not" not in str(failed.details)  # the attempt is not logged


def test_signing_in_sets_a_strict_httponly_cookie_and_returns_where_the_user_was_headed(
    client: TestClient, plane: ControlPlane
) -> None:
    answer = client.post("/ui/login", data={"token": make_token(plane), "next": "/ui/events?kind=ui.*"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/events?kind=ui.*"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("opsplane_session=") and "ops_" not in cookie  # a session id
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui;" in cookie
    page = client.get("/ui/events?kind=ui.*")
    assert page.status_code == 200
    assert "ui.login" in page.text and "token:viewer-web" in page.text


def test_sign_in_never_redirects_off_the_dashboard(client: TestClient, plane: ControlPlane) -> None:
    token = make_token(plane)
    for target in ("https://evil.example/", "//evil.example/ui/", "/api/v1/events", "/ui\\..", ""):
        answer = client.post("/ui/login", data={"token": token, "next": target})
        assert answer.headers["location"] == "/ui/", target


def test_a_login_form_posted_from_another_site_is_refused(client: TestClient, plane: ControlPlane) -> None:
    token = make_token(plane)
    answer = client.post("/ui/login", data={"token": token},
                         headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers
    older = client.post("/ui/login", data={"token": token}, headers={"Origin": "https://evil.example"})
    assert older.status_code == 403  # a browser without fetch metadata still sends Origin
    same = client.post("/ui/login", data={"token": token},
                       headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 303


def test_a_revoked_token_signs_the_browser_out_on_its_next_page(
    signed_in: TestClient, plane: ControlPlane
) -> None:
    assert signed_in.get("/ui/").status_code == 200
    with plane.store.session() as session:
        tokens.revoke(session, name="viewer-web", actor="test")
    answer = signed_in.get("/ui/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")
    assert "Max-Age=0" in answer.headers["set-cookie"]


def test_signing_out_clears_the_cookie(signed_in: TestClient) -> None:
    answer = signed_in.post("/ui/logout")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    assert "Max-Age=0" in answer.headers["set-cookie"]
    assert signed_in.get("/ui/").status_code == 303


def test_a_sign_out_posted_from_another_site_is_refused_and_the_session_lives_on(
    signed_in: TestClient
) -> None:
    answer = signed_in.post("/ui/logout", headers={"Origin": "https://evil.example",
                                                   "Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 403 and "set-cookie" not in answer.headers
    assert signed_in.get("/ui/").status_code == 200


def test_any_role_may_view(client: TestClient, plane: ControlPlane) -> None:
    for role in Role:
        client.cookies.clear()
        client.post("/ui/login", data={"token": make_token(plane, role, name=f"t-{role.value}")})
        assert client.get("/ui/").status_code == 200, role


# --- what the pages show --------------------------------------------------------------------


def test_every_page_answers_with_the_security_headers(signed_in: TestClient) -> None:
    for path in PAGES:
        answer = signed_in.get(path)
        assert answer.status_code == 200, path
        policy = answer.headers["content-security-policy"]
        nonce = re.search(r"'nonce-([^']+)'", policy)
        assert nonce and f'<script nonce="{nonce.group(1)}">' in answer.text, path
        assert "frame-ancestors 'none'" in policy and answer.headers["cache-control"] == "no-store"
    css = signed_in.get("/ui/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_overview_lists_every_component_with_state_reason_and_root_cause(
    signed_in: TestClient, plane: ControlPlane
) -> None:
    plane.latest["postgres-main/postgres"] = ProbeResult(State.CRITICAL, "refuses connections")
    plane.latest["catalog/http"] = ProbeResult(State.CRITICAL, "HTTP 503 in 4 ms")
    plane.latest["catalog/tcp"] = ProbeResult(State.OK, "connected in 1 ms")
    plane.latest["gateway/http"] = ProbeResult(State.OK, "HTTP 200 in 2 ms")
    html = signed_in.get("/ui/").text
    assert rows(html) == COMPONENTS
    catalog = html.split('data-component="catalog"')[1].split("</tr>")[0]
    assert "CRITICAL" in catalog and "Root cause:" in catalog and "/ui/services/postgres-main" in catalog
    assert "depends on postgres-main, which refuses connections" in catalog
    gateway = html.split('data-component="gateway"')[1].split("</tr>")[0]
    assert ">OK<" in gateway and "impacted" in gateway and "critical" in gateway and "edge" in gateway
    assert ("depends on catalog, which depends on postgres-main, which refuses connections" in gateway
            and "Own checks: HTTP 200 in 2 ms" in gateway)
    sessions = html.split('data-component="sessions"')[1].split("</tr>")[0]
    assert "not checked" in sessions and "no checks defined" in sessions
    assert "2 CRITICAL" in html and "1 OK" in html and "1 not checked" in html


def test_text_from_the_inventory_and_from_targets_is_escaped(
    signed_in: TestClient, plane: ControlPlane
) -> None:
    plane.latest["catalog/http"] = ProbeResult(State.CRITICAL, "body <img src=x onerror=alert(1)>")
    overview = signed_in.get("/ui/").text
    service = signed_in.get("/ui/services/catalog").text
    for html in (overview, service):
        assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
        assert "<b>catalog" not in html and "&lt;b&gt;catalog &amp; search&lt;/b&gt;" in html
    assert "<script>alert" not in service and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in service


def scrape_catalog(plane: ControlPlane, requests: float, server_errors: float) -> None:
    """One scrape of catalog's metrics into the plane's sample store, taken now."""
    from opsplane.metrics.ingest import ingest

    [target] = [t for t in plane.scraper.targets if t.component == "catalog"]
    assert plane.samples is not None
    text = (f'http_requests_total{{code="200"}} {requests - server_errors}\n'
            f'http_requests_total{{code="503"}} {server_errors}\n')
    ingest(plane.samples, target, plane.env, text, at=plane.clock.now().timestamp(), duration=0.01)


def test_overview_sparklines_come_from_the_probe_history_and_the_scraped_samples(
    signed_in: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    for duration in (0.010, 0.020, 0.030):
        plane.history.record("catalog/http", ProbeResult(State.OK, "fine", duration))
        clock.advance(60)
    for n in range(5):  # every 30 s: 10 requests a second, one of them answered 503
        scrape_catalog(plane, 1000 + 300 * n, 100 + 30 * n)
        clock.advance(30)
    plane.history.record("catalog/http", ProbeResult(State.CRITICAL, "down", 0.5))
    plane.started_at = clock.now() - timedelta(minutes=6)  # a young serve: the last 15 minutes
    html = signed_in.get("/ui/").text
    assert "Latency, last 15 min" in html
    catalog = html.split('data-component="catalog"')[1].split("</tr>")[0]
    assert "<polyline" in catalog and 'class="fail"' in catalog
    assert "latency now 500 ms, highest 500 ms; not OK in 1 of 60 steps of 15 s" in catalog
    assert "requests now 10/s" in catalog and "5xx now 1/s" in catalog
    gateway = html.split('data-component="gateway"')[1].split("</tr>")[0]
    assert "no probe results in the last 15 min" in gateway and "not scraped" in gateway

    plane.started_at = clock.now() - timedelta(hours=2)  # then the last hour, a point a minute
    html = signed_in.get("/ui/").text
    assert "Requests, last 1 h" in html
    catalog = html.split('data-component="catalog"')[1].split("</tr>")[0]
    assert "latency now 500 ms, highest 500 ms; not OK in 1 of 60 steps of 60 s" in catalog


def test_service_page_shows_checks_neighbours_events_and_instances(
    signed_in: TestClient, plane: ControlPlane
) -> None:
    plane.latest["catalog/http"] = ProbeResult(State.CRITICAL, "HTTP 503 in 4 ms", 0.004)
    plane.checked_at["catalog/http"] = plane.clock.now()
    with plane.store.session() as session:
        events.record(session, kind="check.state_changed", actor="system:control-plane",
                      target="catalog/http", service="catalog", outcome="CRITICAL",
                      details={"from": "OK", "to": "CRITICAL", "reason": "HTTP 503 in 4 ms"})
        events.record(session, kind="check.state_changed", actor="system:control-plane",
                      target="gateway/http", service="gateway", outcome="OK", details={"to": "OK"})
    html = signed_in.get("/ui/services/catalog").text
    assert "<h1>catalog" in html
    checks = html.split('id="checks"')[1].split("</section>")[0]
    assert "http://127.0.0.1:8001/health" in checks and "HTTP 503 in 4 ms" in checks
    assert "not run yet" in checks  # the tcp check
    neighbours = html.split('id="neighbours"')[1].split("</section>")[0]
    depends, dependants = neighbours.split("Depended on by")
    assert "postgres-main" in depends and "gateway" in dependants
    recent = html.split('id="service-events"')[1].split("</section>")[0]
    assert "OK \u2192 CRITICAL: HTTP 503 in 4 ms" in recent and "gateway/http" not in recent
    assert "no runtime" in html.split('id="service-instances"')[1]
    assert 'href="https://runbooks.example/catalog"' in html


def test_an_unknown_service_is_a_404_page(signed_in: TestClient) -> None:
    answer = signed_in.get("/ui/services/nope")
    assert answer.status_code == 404 and "No component named nope" in answer.text


def test_dependency_graph_draws_every_component_labelled_with_its_state(
    signed_in: TestClient, plane: ControlPlane
) -> None:
    plane.latest["postgres-main/postgres"] = ProbeResult(State.CRITICAL, "refuses connections")
    html = signed_in.get("/ui/dependencies").text
    svg = html.split("<svg", 1)[1].split("</svg>")[0]
    for name in COMPONENTS:
        assert f'href="/ui/services/{name}"' in svg
    node = svg.split('href="/ui/services/postgres-main"')[1].split("</a>")[0]
    assert "state-critical" in svg.split('href="/ui/services/postgres-main"')[1][:40]
    assert ">CRITICAL</text>" in node
    assert svg.count('class="edge') == 2 and svg.count("edge-down") == 1  # catalog -> postgres-main


def test_events_page_filters_by_service_and_kind(signed_in: TestClient, plane: ControlPlane) -> None:
    with plane.store.session() as session:
        for service, kind in (("catalog", "check.state_changed"), ("gateway", "check.state_changed"),
                              ("catalog", "deploy.started")):
            events.record(session, kind=kind, actor="test", target=f"{service}/x", service=service,
                          outcome="OK")
    def listed(query: str) -> list[str]:
        html = signed_in.get(f"/ui/events{query}").text
        section = html.split('id="event-list"')[1].split("</section>")[0]
        return re.findall(r"<code>([a-z_.]+)</code></td>\s*<td><a href=\"/ui/services/([a-z-]+)\"", section)

    assert len(listed("")) == 3
    assert listed("?service=catalog") == [("deploy.started", "catalog"), ("check.state_changed", "catalog")]
    assert listed("?service=catalog&kind=check.*") == [("check.state_changed", "catalog")]
    assert listed("?kind=nothing.here") == []
    html = signed_in.get("/ui/events?service=catalog").text
    assert '<option value="catalog" selected>' in html
    assert signed_in.get("/ui/events?limit=0").status_code == 422


def test_instances_page_lists_what_the_runtime_reports(signed_in: TestClient, plane: ControlPlane) -> None:
    assert "no runtime" in signed_in.get("/ui/instances").text
    signed_in.app.state.runtime_view = RuntimeView(plane.inventory, base_dir=Path.cwd(),  # type: ignore[attr-defined]
                                                   driver=StandInRuntime())
    html = signed_in.get("/ui/instances").text
    table = html.split('id="instances"')[1].split("</section>")[0]
    assert table.count("<tr>") == 4  # a header and three instances
    assert "4242" in table and "50 MiB" in table and "60 min" in table and "exit 1" in table
    service = signed_in.get("/ui/services/catalog").text.split('id="service-instances"')[1]
    assert "4242" in service and "4243" not in service  # orders' instance is not catalog's


def test_large_inventories_refresh_less_often() -> None:
    from opsplane.web.render import refresh_seconds

    assert [refresh_seconds(n) for n in (0, 4, 500, 501, 1000, 10_000)] == [5, 5, 5, 10, 10, 60]
