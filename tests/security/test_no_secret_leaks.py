"""No secret value reaches a log line, an event, the API or the dashboard.

A real `opsplane serve` runs an inventory whose secrets all come from the environment: a
database password (its check signs in to a real PostgreSQL with it), a bearer token an HTTP
check sends (to a service that answers 503 with the request's headers in its body), and a
Slack webhook URL, itself the credential, whose receiver answers 404 quoting the path it was
posted to. The failing check pages through the Slack channel, so the delivery fails with the
hook in the answer. Then serve's output, every event in the store, every API route without
parameters and every dashboard page reachable from the home page, read with an API token, are
searched for each secret value and for the token itself: none may appear.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.events.service import get_all
from opsplane.store import Store
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.polling import wait_for
from tests.support.serve import Serve, signed_in_client

REPO = Path(__file__).resolve().parents[2]
DB_PASSWORD = "dbpw-" + secrets.token_hex(8)
CHECK_TOKEN = "chk-" + secrets.token_hex(8)
HOOK_TOKEN = "hk" + secrets.token_hex(10)
HOOK_PATH = f"/services/T0LEAK/B0LEAK/{HOOK_TOKEN}"
INVENTORY = """\
platform: {{name: shop}}
defaults: {{interval: 300ms, timeout: 2s}}
databases:
  main:
    host: 127.0.0.1
    port: {pg_port}
    user: leakprobe
    password: env:LEAK_DB_PASSWORD
    checks: [{{type: postgres}}]
services:
  orders:
    url: {service_url}
    checks: [{{type: http, path: /health, bearer_token: env:LEAK_CHECK_TOKEN}}]
channels:
  named:
    ops: {{type: slack, webhook_url: env:LEAK_SLACK_URL, digest: false}}
alerting:
  evaluation_interval: 500ms
  builtin_rules: {{thresholds: {{check_failures: 2}}}}
  route: {{receiver: ops, group_wait: 0s, group_interval: 1s}}
  receivers:
    ops: {{channels: [ops]}}
"""


@pytest.fixture
def watched(tmp_path: Path, postgres_cluster: TemporaryPostgres) -> Iterator[tuple[Serve, LocalHttpServer]]:
    postgres_cluster.execute("DROP ROLE IF EXISTS leakprobe")
    postgres_cluster.execute(f"CREATE ROLE leakprobe LOGIN PASSWORD '{DB_PASSWORD}'")
    routes = {"/health": Reply(503, echo_headers=True),
              HOOK_PATH: Reply(404, f"no_service: nothing is posted at {HOOK_PATH}".encode())}
    with LocalHttpServer(routes) as server:
        path = tmp_path / "opsplane.yaml"
        path.write_text(INVENTORY.format(pg_port=postgres_cluster.port, service_url=server.url("/")))
        serve = Serve(tmp_path, path)
        serve.env.update({"PYTHONPATH": str(REPO), "LEAK_DB_PASSWORD": DB_PASSWORD,
                          "LEAK_CHECK_TOKEN": CHECK_TOKEN, "LEAK_SLACK_URL": server.url(HOOK_PATH)})
        try:
            serve.start()
            yield serve, server
        finally:
            serve.stop()


def _events(serve: Serve) -> list[dict[str, Any]]:
    store = Store.open(serve.env["OPSPLANE_DATABASE_URL"])
    try:
        with store.session() as session:
            return [event.as_dict() for event in get_all(session, limit=5000)]
    finally:
        store.close()


def _api_texts(serve: Serve, token: str) -> dict[str, str]:
    """Every GET route of the API without path parameters, read with `token`."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=serve.url, timeout=10, headers=headers, trust_env=False) as client:
        document = client.get("/api/v1/openapi.json").json()
        paths = [p for p, ops in document["paths"].items() if "get" in ops and "{" not in p]
        paths += ["/health", "/metrics", "/status", "/status.json"]
        texts = {p: client.get(p).text for p in paths}
    assert len(texts) > 20, sorted(texts)
    return texts


def _dashboard_texts(serve: Serve, token: str) -> dict[str, str]:
    """Every dashboard page reachable from the home page through links, read signed in."""
    texts: dict[str, str] = {}
    queue = ["/ui/"]
    with signed_in_client(serve.url, token) as client:
        while queue and len(texts) < 150:
            page = queue.pop(0)
            if page in texts or "logout" in page:
                continue
            answer = client.get(page)
            texts[page] = answer.text
            for link in re.findall(r'href="(/ui/[^"#?]*)', answer.text):
                if link not in texts and not link.startswith("/ui/static"):
                    queue.append(link)
    assert len(texts) > 5, sorted(texts)
    return texts


def test_no_secret_value_reaches_logs_events_api_or_dashboard(watched: tuple[Serve, LocalHttpServer]) -> None:
    serve, server = watched
    token = json.loads(serve.cli("token", "create", "--role", "admin", "--name", "reader", "--json"))["token"]

    def paged() -> Any:
        return [e for e in _events(serve) if e["kind"] in ("notify.failed", "notify.retry")]

    attempts = wait_for(paged, "a failed delivery to the Slack hook", timeout=60)
    assert "HTTP 404" in str(attempts[0]["details"])  # the receiver's answer is kept, redacted
    # the secrets were used: the database check signed in, the check sent its token
    assert any(s.path == HOOK_PATH for s in server.seen)
    assert any(s.headers.get("authorization") == f"Bearer {CHECK_TOKEN}" for s in server.seen)
    health = httpx.get(f"{serve.url}/api/v1/health", headers={"Authorization": f"Bearer {token}"},
                       timeout=10).json()
    assert "main" in str(health) and "orders" in str(health)

    where: dict[str, str] = {}
    where.update({f"event {e['id']} {e['kind']}": repr(e) for e in _events(serve)})
    where.update({f"API {p}": t for p, t in _api_texts(serve, token).items()})
    where.update({f"page {p}": t for p, t in _dashboard_texts(serve, token).items()})
    where["serve's output"] = serve.stop()
    for name, value in (("database password", DB_PASSWORD), ("check token", CHECK_TOKEN),
                        ("Slack hook", HOOK_TOKEN), ("API token", token)):
        leaks = [place for place, text in where.items() if value in text]
        assert not leaks, f"the {name} appears in {leaks}"
