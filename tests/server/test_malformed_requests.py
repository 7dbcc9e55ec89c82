"""Requests no client should send, to a real `opsplane serve`: each is refused with a 4xx that
says what is wrong, serve goes on answering, and its log holds no traceback (a traceback a
request can cause is thousands of lines an attacker can write into the log at will)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.serve import Serve

pytestmark = pytest.mark.slow

INVENTORY = """\
platform: {name: shop}
services:
  orders: {port: 1, metrics_path: /metrics, checks: [{type: tcp}]}
"""
HUGE = "99999999999999999999999"  # past any 64-bit id
DEEP_JSON = "[" * 200_000
DEEP_PROMQL = "(" * 3000 + "up" + ")" * 3000


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, httpx.Client, httpx.Client]]:
    workdir: Path = tmp_path_factory.mktemp("malformed")
    inventory = workdir / "opsplane.yaml"
    inventory.write_text(INVENTORY)
    serve = Serve(workdir, inventory)
    token = json.loads(serve.cli("token", "create", "--name", "ana", "--role", "admin", "--json"))["token"]
    serve.start()
    api = httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                       trust_env=False)
    browser = httpx.Client(base_url=serve.url, timeout=30, trust_env=False)
    signed_in = browser.post("/ui/login", data={"token": token, "next": "/ui/"})
    assert signed_in.status_code in (200, 303), signed_in.text
    try:
        yield serve, api, browser
    finally:
        api.close()
        browser.close()
        serve.stop()


# Each request, the status it gets and a phrase its answer says.
REFUSED = [
    ("GET", "/api/v1/query", {"query": "up", "time": "inf"}, None, 400, "cannot read 'inf' as a time"),
    ("GET", "/api/v1/query", {"query": "up", "time": "1e300"}, None, 400, "outside the times"),
    ("GET", "/api/v1/query_range", {"query": "up", "start": "0", "end": "inf", "step": "1"}, None, 400,
     'invalid parameter "end"'),
    ("GET", "/api/v1/query", {"query": DEEP_PROMQL}, None, 400, "nested more than 128 deep"),
    ("GET", "/api/v1/query_range", {"query": DEEP_PROMQL, "start": "0", "end": "10", "step": "1"}, None,
     400, "nested more than 128 deep"),
    # a flat chain is as deep a tree as nested parentheses (the parser's own stack overflows
    # at about 10,000: the process dies)
    ("GET", "/api/v1/query", {"query": "+".join(["up"] * 12_000)}, None, 400, "nested more than 128 deep"),
    ("GET", "/api/v1/query", {"query": "-" * 12_000 + "up"}, None, 400, "nested more than 128 deep"),
    ("GET", f"/api/v1/incidents/{HUGE}", None, None, 404, "no incident"),
    ("GET", "/api/v1/incidents/INC-9223372036854775808", None, None, 404, "no incident"),
    ("POST", f"/api/v1/incidents/{HUGE}/ack", None, b"{}", 404, "no incident"),
    ("GET", "/api/v1/events", {"before_id": HUGE}, None, 422, "query.before_id"),
    ("POST", "/api/v2/alerts", None, DEEP_JSON.encode(), 400, "nested"),
    ("POST", "/api/v1/incidents/1/updates", None, DEEP_JSON.encode(), 400, "error parsing the body"),
]


@pytest.mark.parametrize(("method", "path", "params", "body", "status", "says"), REFUSED,
                         ids=[f"{r[0]} {r[1]} {str(r[2])[:30]} {str(r[3])[:10]}" for r in REFUSED])
def test_a_malformed_api_request_is_refused_with_the_reason(
    served: tuple[Serve, httpx.Client, httpx.Client], method: str, path: str,
    params: dict[str, str] | None, body: bytes | None, status: int, says: str,
) -> None:
    _, api, _ = served
    answer = api.request(method, path, params=params, content=body,
                         headers={"Content-Type": "application/json"} if body is not None else None)
    assert answer.status_code == status, answer.text[:500]
    if path.startswith("/api/v1/query"):  # Prometheus's shape, which its tools read
        assert answer.json()["errorType"] == "bad_data"
        assert says in answer.json()["error"]
    else:
        assert says in answer.text
    assert len(answer.text) < 2000


@pytest.mark.parametrize("path", [f"/ui/incidents/{HUGE}", f"/ui/incidents/INC-{HUGE}/postmortem"])
def test_a_page_for_an_incident_past_any_id_is_not_found(
    served: tuple[Serve, httpx.Client, httpx.Client], path: str
) -> None:
    _, _, browser = served
    assert browser.get(path).status_code == 404


Served = tuple[Serve, httpx.Client, httpx.Client]


def test_serve_still_answers_and_logged_no_traceback(served: Served) -> None:
    serve, api, _ = served
    for method, path, params, body, _status, _says in REFUSED:  # whatever ran before, once more
        api.request(method, path, params=params, content=body)
    assert api.get("/api/v1/query", params={"query": "1 + 1"}).json()["data"]["result"][1] == "2"
    log = serve.stop()
    assert "Traceback" not in log
    assert "RecursionError" not in log and "OverflowError" not in log
    assert len(log.splitlines()) < 200
