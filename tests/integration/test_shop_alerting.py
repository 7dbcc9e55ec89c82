"""Alerting end to end on the shop: `opsplane serve` scrapes the shop under the runtime,
evaluates an error-ratio rule over the samples, and a webhook receiver gets the firing
notification when errors are injected into the gateway and the resolved one when they stop."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from opsplane.config.loader import load
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port
from tests.integration.conftest import set_faults
from tests.support.polling import wait_for
from tests.support.serve import Serve, signed_in_client
from tests.support.webhook import Hook

RULES = """\
alerting:
  evaluation_interval: 1s
  rules:
    - name: GatewayErrors
      expr: >-
        sum by (service) (rate(http_requests_total{{service="gateway",status=~"5.."}}[20s]))
        / sum by (service) (rate(http_requests_total{{service="gateway"}}[20s])) > 0.05
      for: 2s
      severity: P1
      annotations: {{summary: "{{{{ $labels.service }}}} fails {{{{ $value | humanizePercentage }}}}"}}
  route: {{receiver: hook, group_by: [alertname], group_wait: 5s, group_interval: 1s}}
  receivers:
    hook: {{webhook: {{url: "http://127.0.0.1:{port}/hook"}}}}
"""


@pytest.fixture(scope="module")
def watched_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoStack, Serve, Hook]]:
    stack = DemoStack(tmp_path_factory.mktemp("alerting") / "demo", paging=False, host_check=False)
    hook = Hook()
    serve: Serve | None = None
    try:
        stack.start_servers()
        path = stack.write_inventory(free_port())
        path.write_text(path.read_text().replace("defaults: {interval: 5s", "defaults: {interval: 2s")
                        + RULES.format(port=hook.port))
        stack.start_shop(load(path))
        serve = Serve(stack.base, path)
        serve.start()
        yield stack, serve, hook
    finally:
        output = serve.stop() if serve is not None else ""
        stack.stop()
        hook.close()
        assert "Traceback" not in output, output


def test_errors_in_the_gateway_page_once_and_resolve_when_they_stop(watched_shop) -> None:
    stack, serve, hook = watched_shop
    assert hook.statuses("GatewayErrors") == []  # a healthy shop pages nobody

    set_faults(stack, "gateway", {"error_ratio": {"*": 0.5}})
    try:
        wait_for(lambda: "firing" in hook.statuses("GatewayErrors"), "the firing notification", timeout=60)
        shown = subprocess.run([sys.executable, "-m", "opsplane", "-c", str(serve.inventory), "alerts",
                                "--json"], cwd=serve.workdir, env=serve.env, capture_output=True, text=True)
        assert shown.returncode == 2, shown.stderr  # a P1 fires: scripts see it in the exit code
        [firing] = [a for a in json.loads(shown.stdout)["alerts"] if a["name"] == "GatewayErrors"]
        assert firing["state"] == "firing" and firing["labels"]["service"] == "gateway"
        [message] = [m for m in hook.received if m["status"] == "firing"
                     and m["alerts"][0]["labels"]["alertname"] == "GatewayErrors"][:1]
        assert message["alerts"][0]["annotations"]["summary"].startswith("gateway fails ")
        # and the dashboard's alerts page shows it, for someone signed in
        created = serve.cli("token", "create", "--name", "wall", "--role", "viewer", "--json")
        token = json.loads(created)["token"]
        with signed_in_client(serve.url, token) as browser:
            shown_page = browser.get("/ui/alerts")
        assert shown_page.status_code == 200
        assert '<tr data-alert="GatewayErrors">' in shown_page.text
        assert 'class="badge alert-firing">firing<' in shown_page.text
    finally:
        set_faults(stack, "gateway", None)
    wait_for(lambda: "resolved" in hook.statuses("GatewayErrors"), "the resolved notification", timeout=90)
    assert hook.statuses("GatewayErrors").count("firing") == 1  # paged once, not every cycle


def test_a_dead_database_pages_once_and_mutes_what_depends_on_it(watched_shop) -> None:
    # Last in this module: the database does not come back.
    stack, serve, hook = watched_shop
    assert stack.postgres is not None
    stack.postgres.stop()

    wait_for(lambda: "firing" in hook.statuses("DatabaseDown"), "the DatabaseDown page", timeout=90)
    [page] = [m for m in hook.received if m["alerts"][0]["labels"]["alertname"] == "DatabaseDown"]
    down = page["alerts"][0]
    assert down["labels"]["service"] == "postgres-main" and down["labels"]["severity"] == "P0"
    # catalog and orders need the database: their own failing checks are muted, and the
    # page says what it explains
    wait_for(lambda: {e["alert"]["labels"]["service"] for m in hook.received for e in m["explains"]}
             >= {"catalog", "orders"}, "the dependants to be explained by the page", timeout=60)
    shown = subprocess.run([sys.executable, "-m", "opsplane", "-c", str(serve.inventory), "alerts",
                            "--json"], cwd=serve.workdir, env=serve.env, capture_output=True, text=True)
    rows = {(a["name"], a["labels"].get("service")): a for a in json.loads(shown.stdout)["alerts"]}
    for service in ("catalog", "orders"):
        assert rows[("CheckFailing", service)]["muted"].startswith("inhibited by DatabaseDown")
    paged = {a["labels"].get("service") for m in hook.received for a in m["alerts"]
             if a["labels"]["alertname"] == "CheckFailing" and a["status"] == "firing"}
    assert not paged & {"catalog", "orders"}, paged
    assert hook.statuses("DatabaseDown").count("firing") == 1
