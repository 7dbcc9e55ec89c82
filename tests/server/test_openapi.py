"""The API keeps its OpenAPI document: schemathesis generates requests from the document a
real `opsplane serve` publishes, valid and invalid ones, sends each with a token of the role
the document says the route needs, and runs every check it has on the answers (no server
error, only declared statuses, bodies and content types as declared, invalid data refused,
valid data accepted, no route that ignores a missing token, ...) plus one of ours: the role
the document names is enough (`openapi_checks.py`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from opsplane.alerts.intake import MAX_ALERTS
from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.clock import SystemClock
from opsplane.config.loader import loads
from opsplane.drivers.sandbox.ports import free_port
from opsplane.incidents import service as incidents
from opsplane.store import Store
from tests.oncall.factories import oncall_data
from tests.support.serve import Serve

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = "/api/v1/openapi.json"
ROLE = "x-opsplane-role"
EXAMPLES = 25  # per route and phase
# A fixed seed keeps the suite repeatable; OPSPLANE_FUZZ_SEED explores other requests.
SEED = os.environ.get("OPSPLANE_FUZZ_SEED", "20261124")
# What schemathesis counts as accepting valid data, by default.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
# Routes whose valid-looking requests can still break a rule no schema can state: the
# document says so in the route's 400 or 422, and the check takes that answer as well.
DOMAIN_RULES: dict[str, str] = {
    "/api/v1/query": "400",  # an expression that does not parse (Prometheus's bad_data)
    "/api/v1/query_range": "400",  # the same, or a step and range over 11,000 points
    "/api/v2/alerts": "400",  # an endsAt before its startsAt
    "/api/v1/oncall/overrides": "422",  # an unknown schedule, layer or person; end before start
    "/api/v1/oncall/handoffs": "422",  # an unknown schedule, a note of blanks
    "/api/v1/incidents/{incident_id}/updates": "422",  # a next update that is no delay or time
    "/api/v1/incidents/{incident_id}/resolve": "422",  # a summary of blanks
    "/api/v1/runbooks/{name}/runs": "422",  # parameters the runbook needs, or names it does not have
    "/api/v1/gamedays": "422",  # a scenario the platform cannot play now (nothing to stop)
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, dict[str, str]]]:
    """A real serve over an inventory with a service, an on-call schedule and an incident,
    and a token of each role."""
    workdir = tmp_path_factory.mktemp("openapi")
    inventory = workdir / "opsplane.yaml"
    inventory.write_text(yaml.safe_dump({
        "platform": {"name": "shop"},
        "defaults": {"interval": "1s", "timeout": "500ms"},
        "services": {"orders": {"port": free_port(), "checks": [{"type": "tcp"}]}},
        "oncall": oncall_data(),
    }))
    server = Serve(workdir, inventory)
    store = Store.open(server.env["OPSPLANE_DATABASE_URL"])
    with store.session() as session:
        issued = {role.value: tokens.create(session, name=role.value, role=role, actor="test")
                  for role in Role}
        incidents.create(session, title="checkout fails", service="orders", severity="P1", actor="test",
                         now=SystemClock().now(), settings=loads(inventory.read_text()).incidents)
    store.close()
    server.start()
    try:
        yield server, issued
    finally:
        server.stop()


def test_every_route_answers_as_its_document_says(served: tuple[Serve, dict[str, str]],
                                                   tmp_path: Path) -> None:
    server, issued = served
    document = httpx.get(server.url + DOCUMENT, headers=_bearer(issued["viewer"]), timeout=5).json()
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(document, issued))
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color", "run",
         server.url + DOCUMENT, "--checks", "all", "--max-examples", str(EXAMPLES), "--seed", SEED,
         "--header", f"Authorization: Bearer {issued['viewer']}"],  # to read the document
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=600)
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    assert f"Tested: {len(_operations(document))}" in run.stdout, run.stdout[-3000:]


def _config(document: Any, issued: dict[str, str]) -> str:
    """schemathesis.toml: our check, and for each route the token of its role and the
    answers its domain rules allow."""
    lines = ['hooks = "tests.server.openapi_checks"', ""]
    for (path, method), spec in _operations(document).items():
        if ROLE not in spec and path not in DOMAIN_RULES:
            continue  # a public route with nothing to set
        # Filters of an entry select what any of them matches, so an entry names one operation
        # by its label, method and path (/api/v1/deploys is read by one and written by another).
        label = f"^{method.upper()} {re.escape(path)}$"
        lines += ["[[operations]]", f"include-name-regex = {json.dumps(label)}"]
        if ROLE in spec:
            lines.append(f"headers = {{ Authorization = {json.dumps('Bearer ' + issued[spec[ROLE]])} }}")
        if path in DOMAIN_RULES:
            lines.append("checks.positive_data_acceptance.expected-statuses = "
                         + json.dumps([*ACCEPTED, DOMAIN_RULES[path]]))
        lines.append("")
    return "\n".join(lines)


def _operations(document: Any) -> dict[tuple[str, str], Any]:
    return {(path, method): spec for path, methods in document["paths"].items()
            for method, spec in methods.items()}


def test_the_document_is_served_to_viewers_only(served: tuple[Serve, dict[str, str]]) -> None:
    server, issued = served
    assert httpx.get(server.url + DOCUMENT, timeout=5).status_code == 401
    document = httpx.get(server.url + DOCUMENT, headers=_bearer(issued["viewer"]), timeout=5).json()
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    operations = _operations(document)
    for (path, _), spec in operations.items():
        public = path in ("/health", "/metrics", "/status.json")
        assert ("security" in spec) is not public, path
        assert (ROLE in spec) is not public, path
        if not public:
            assert {"401", "403"} <= set(spec["responses"]), path
    assert operations[("/api/v1/oncall/overrides", "post")][ROLE] == "responder"
    assert operations[("/api/v1/services/{service}/scale", "post")][ROLE] == "operator"
    alerts = operations[("/api/v2/alerts", "post")]["requestBody"]["content"]["application/json"]
    assert alerts["schema"]["maxItems"] == MAX_ALERTS  # the document states what intake takes
    # the dashboard's pages and forms are left out (docs/decisions/0014-api-document.md)
    assert not [path for path, _ in operations if path.startswith("/ui") or path == "/status"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_error_answers_the_one_error_body(served: tuple[Serve, dict[str, str]]) -> None:
    server, issued = served
    invalid = httpx.get(server.url + "/api/v1/events", params={"before_id": str(2**63), "since": "0.5x"},
                        headers=_bearer(issued["viewer"]), timeout=5)
    assert invalid.status_code == 422
    body = invalid.json()
    assert {p["field"] for p in body["problems"]} == {"query.before_id", "query.since"}
    assert "before_id" in body["detail"]
    too_big = httpx.get(server.url + "/api/v1/incidents/INC-" + "9" * 20, headers=_bearer(issued["viewer"]),
                        timeout=5)
    assert too_big.status_code == 404  # no incident has an id past a store's 64 bits
    assert set(too_big.json()) == {"detail", "problems"}
    refused = httpx.post(server.url + "/api/v1/oncall/handoffs", json={"schedule": "nope", "note": "hi"},
                         headers=_bearer(issued["responder"]), timeout=5)
    assert refused.status_code == 422
    assert refused.json() == {"detail": refused.json()["detail"], "problems": []}
    assert "unknown schedule 'nope'" in refused.json()["detail"]


def test_times_are_rfc_3339_or_unix_seconds_on_every_route(served: tuple[Serve, dict[str, str]]) -> None:
    server, issued = served
    viewer = _bearer(issued["viewer"])
    for path, name in (("/api/v1/events", "until"), ("/api/v1/oncall", "at"),
                       ("/api/v1/oncall/shifts", "start"), ("/api/v1/query", "time")):
        params = {"query": "vector(1)"} if path == "/api/v1/query" else {}
        for good in ("2026-03-04T10:00:00Z", "2026-03-04T11:00:00.5+01:00", "1772618400", "1772618400.5"):
            answer = httpx.get(server.url + path, params={**params, name: good}, headers=viewer, timeout=5)
            assert answer.status_code == 200, (path, good, answer.text)
        for bad in ("2026-03-04T10:00:00", "2026-03-04", "nan", "inf", "1e300", "-1", "1_000",
                    "9999-01-01T00:00:00Z"):
            answer = httpx.get(server.url + path, params={**params, name: bad}, headers=viewer, timeout=5)
            if path == "/api/v1/query":  # refused as Prometheus refuses it
                assert answer.status_code == 400, (path, bad, answer.text)
                assert answer.json()["error"].startswith(f'invalid parameter "{name}": ')
                continue
            assert answer.status_code == 422, (path, bad, answer.text)
            assert answer.json()["problems"][0]["field"] == f"query.{name}"
