"""Dashboard sessions against `opsplane serve` as a process: the cookie holds a session id,
never the token; signing out ends the session, so a copy of the old cookie is refused;
revoking the token ends its sessions. With an injected clock: a session ends after the idle
timeout and after its lifetime, and an expired token is refused by the API and the sign-in
form with a message that says so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.drivers.sandbox.ports import free_port
from opsplane.server import ControlPlane
from opsplane.web.session import COOKIE
from tests.support.serve import Serve, serving, signed_in_client


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    port = free_port()  # serve's own: its one check passes
    inventory = ("platform: {name: shop}\n"
                 f"services:\n  api: {{port: {port}, checks: [{{type: tcp}}]}}\n")
    with serving(tmp_path, inventory, port) as serve:
        yield serve


def create_token(serve: Serve, name: str, *extra: str) -> str:
    created = json.loads(serve.cli("token", "create", "--name", name, "--role", "viewer", "--json",
                                   *extra))
    return str(created["token"])


def cookie_of(client: httpx.Client) -> str:
    return str(client.cookies[COOKIE])


def test_the_cookie_carries_a_session_id_never_the_token(serve: Serve) -> None:
    token = create_token(serve, "wall")
    serve.start()
    with httpx.Client(base_url=serve.url, timeout=10) as browser:
        answer = browser.post("/ui/login", data={"token": token})
        assert answer.status_code == 303
        header = answer.headers["set-cookie"]
        assert token not in header and token[4:] not in header
        assert "HttpOnly" in header and "SameSite=Strict" in header and "Path=/ui;" in header
        assert "Secure" not in header  # plain HTTP here; Secure when served over HTTPS
        session_id = cookie_of(browser)
        assert session_id != token and not session_id.startswith("ops_")
        assert browser.get("/ui/").status_code == 200
        # the API takes tokens only: the session id is no bearer token
        api = httpx.get(serve.url + "/api/v1/whoami", headers={"Authorization": f"Bearer {session_id}"})
        assert api.status_code == 401


def test_after_signing_out_the_old_cookie_is_refused(serve: Serve) -> None:
    token = create_token(serve, "alice")
    serve.start()
    with signed_in_client(serve.url, token) as browser:
        old = cookie_of(browser)
        assert browser.get("/ui/").status_code == 200
        out = browser.post("/ui/logout")
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    with httpx.Client(base_url=serve.url, timeout=10, cookies={COOKIE: old}) as copy:
        answer = copy.get("/ui/")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")
        assert "Max-Age=0" in answer.headers["set-cookie"]
    logged = serve.read("events", "--kind", "ui.*")
    assert [e["kind"] for e in logged][:2] == ["ui.logout", "ui.login"]


def test_revoking_a_token_ends_its_sessions(serve: Serve) -> None:
    token = create_token(serve, "bob")
    serve.start()
    with signed_in_client(serve.url, token) as first, signed_in_client(serve.url, token) as second:
        serve.cli("token", "revoke", "bob")
        for browser in (first, second):
            assert browser.get("/ui/").status_code == 303


def test_a_token_with_an_expiry_shows_it_and_bad_expiries_are_refused(serve: Serve) -> None:
    before = datetime.now(UTC)
    create_token(serve, "ci", "--expires", "90d")
    create_token(serve, "contractor", "--expires", "2099-03-01")
    create_token(serve, "forever")
    listed = {t["name"]: t for t in serve.read("token", "list")}
    ci = datetime.fromisoformat(listed["ci"]["expires_at"])
    assert timedelta(days=89, hours=23) < ci - before < timedelta(days=90, minutes=1)
    assert listed["contractor"]["expires_at"] == "2099-03-01T00:00:00+00:00"
    assert listed["forever"]["expires_at"] is None
    assert not any(t["expired"] for t in listed.values())
    table = serve.cli("token", "list")
    assert "EXPIRES" in table and "2099-03-01" in table
    for wrong, said in (("soon", "--expires"), ("-5d", "--expires"), ("2001-01-01", "not in the future")):
        run = serve.run("token", "create", "--name", f"x{len(wrong)}", "--role", "viewer",
                        "--expires", wrong)
        assert run.returncode == 3 and said in run.stderr + run.stdout, run
        assert "Traceback" not in run.stderr


# --- with an injected clock (tests/web/conftest.py's plane: the default 8 h idle, 24 h lifetime) ---


def make_token(plane: ControlPlane, name: str = "wall", **expiry: datetime) -> str:
    with plane.store.session() as session:
        return tokens.create(session, name=name, role=Role.VIEWER, actor="test", clock=plane.clock,
                             **expiry)


def sign_in(client: TestClient, token: str) -> None:
    assert client.post("/ui/login", data={"token": token}).status_code == 303


def test_a_session_unused_for_the_idle_timeout_ends(client: TestClient, plane: ControlPlane,
                                                    clock: ManualClock) -> None:
    sign_in(client, make_token(plane))
    clock.advance(7.9 * 3600)
    assert client.get("/ui/").status_code == 200  # used: the idle time starts again
    clock.advance(7.9 * 3600)
    assert client.get("/ui/").status_code == 200
    clock.advance(8 * 3600 + 120)
    answer = client.get("/ui/")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")


def test_a_session_ends_after_its_lifetime_however_busy(client: TestClient, plane: ControlPlane,
                                                        clock: ManualClock) -> None:
    sign_in(client, make_token(plane))
    for _ in range(23):
        clock.advance(3600)
        assert client.get("/ui/").status_code == 200
    clock.advance(3600 + 60)
    assert client.get("/ui/").status_code == 303


def test_an_expired_token_is_refused_with_a_message_that_says_so(
        client: TestClient, plane: ControlPlane, clock: ManualClock) -> None:
    token = make_token(plane, expires_at=clock.now() + timedelta(days=90))
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/whoami", headers=bearer).status_code == 200
    clock.advance(90 * 86400 - 1800)
    sign_in(client, token)
    assert client.get("/ui/").status_code == 200
    clock.advance(3600)  # past the expiry, well inside the session's idle timeout and lifetime
    refused = client.get("/api/v1/whoami", headers=bearer)
    assert refused.status_code == 401
    assert "token 'wall' expired at 2026-04-06 10:0" in refused.json()["detail"], refused.json()
    assert client.get("/ui/").status_code == 303  # its session ended with it
    again = client.post("/ui/login", data={"token": token})
    assert again.status_code == 401 and "expired at 2026-04-06" in again.text
