"""A started `opsplane serve` that nobody has asked anything carries none of the domains behind
its API and pages (incidents, on-call, the runtime, the dashboard's pages and Jinja2, the
alerting engine), nor what migrating its new store took (Alembic): each domain is imported by
the first request that needs it, and every route is registered all the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from opsplane.drivers.sandbox.ports import free_port
from opsplane.web.session import COOKIE

# What a request brings in, by the request that first needs it.
LAZY = {
    "/api/v1/incidents": ["opsplane.incidents.service", "opsplane.incidents.timeline"],
    "/api/v1/oncall": ["opsplane.oncall.service", "opsplane.oncall.rotation", "opsplane.oncall.report"],
    "/api/v1/health": ["opsplane.health.report"],
    "/api/v1/instances": ["opsplane.drivers.runtime"],
    "/ui/": ["opsplane.web.pages", "opsplane.web.render", "opsplane.web.charts", "jinja2"],
    "/ui/incidents": ["opsplane.web.incident_pages"],
    "/status.json": ["opsplane.web.status", "opsplane.web.uptime"],
}
# What no request above needs while every check passes and nothing is scraped.
NEVER = ["opsplane.alerts.engine", "opsplane.alerts.flows", "opsplane.metrics.promql",
         "opsplane.notify.dispatcher", "opsplane.alerts.intake", "alembic", "mako"]

# Runs `opsplane serve` in this process, as the command does; a thread waits for it to
# answer, reports the modules, makes each request and reports again, then stops it.
SERVE = """
import json, os, signal, sys, threading
import httpx
from opsplane.cli import main

url, inventory, port = sys.argv[1:4]
lazy = json.loads(sys.argv[4])
watched = sorted({name for names in lazy.values() for name in names} | set(json.loads(sys.argv[5])))

def loaded():
    return [name for name in watched if name in sys.modules]

def watch():
    from tests.support.polling import wait_for

    def healthy():
        try:
            return httpx.get(url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(healthy, "serve to answer /health")
        report = {"started": loaded(), "after": {}}
        from datetime import UTC, datetime

        from opsplane.auth import service as tokens, sessions
        from opsplane.store import Store

        store = Store.open(migrate=False)  # serve made it
        with store.session() as session:
            token = tokens.create(session, name="viewer", role=tokens.Role.VIEWER, actor="test")
        with store.session() as session:
            session_id, _ = sessions.start(session, token=token, client="test", now=datetime.now(UTC),
                                           policy=sessions.SessionPolicy())
        for path in lazy:
            answer = httpx.get(url + path, timeout=10, headers={"Authorization": "Bearer " + token},
                               cookies={COOKIE: session_id})
            report["after"][path] = [answer.status_code, loaded()]
        routes = httpx.get(url + "/api/v1/openapi.json", timeout=10,
                           headers={"Authorization": "Bearer " + token}).json()["paths"]
        report["routes"] = sorted(routes)
        print("REPORT " + json.dumps(report), flush=True)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)

COOKIE = sys.argv[6]
threading.Thread(target=watch, daemon=True).start()
sys.argv = ["opsplane", "-c", inventory, "serve", "--port", port]
main()
"""


def test_a_started_serve_imports_a_domain_only_with_the_first_request_for_it(tmp_path: Path) -> None:
    port = free_port()
    inventory = tmp_path / "opsplane.yaml"
    # one check that passes (serve's own port), nothing scraped: alerting has nothing to do
    inventory.write_text(yaml.safe_dump({
        "platform": {"name": "shop"},
        "services": {"api": {"port": port, "checks": [{"type": "tcp"}]}},
    }))
    database = f"sqlite:///{tmp_path}/opsplane.db"  # new: serve migrates it
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", SERVE, f"http://127.0.0.1:{port}", str(inventory), str(port),
         json.dumps(LAZY), json.dumps(NEVER), COOKIE],
        cwd=tmp_path, env={**os.environ, "OPSPLANE_DATABASE_URL": database, "PYTHONPATH": str(root)},
        capture_output=True, text=True, timeout=120)
    lines = [line for line in run.stdout.splitlines() if line.startswith("REPORT ")]
    assert lines, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(lines[0].removeprefix("REPORT "))

    assert report["started"] == [], "imported before any request asked for it"
    for path, names in LAZY.items():
        status, loaded = report["after"][path]
        assert status == 200, (path, status)
        assert set(names) <= set(loaded), (path, sorted(set(names) - set(loaded)))
    assert not set(NEVER) & set(report["after"]["/status.json"][1])
    # and every route is registered all the same
    assert {"/api/v1/incidents", "/api/v1/oncall/overrides", "/api/v2/alerts",
            "/api/v1/services/{service}/restart", "/status.json"} <= set(report["routes"])
