"""An incident end to end on the shop: payments goes down, its failing check fires the rule
pack's CheckFailing, which pages a PagerDuty-like receiver through the outbox and opens an
incident whose escalation texts the on-call primary through an SMS gateway; the responder
acknowledges it from the CLI and the primary is told; payments comes back, the page is
resolved; the incident is resolved, and its timeline and post-mortem draft carry the real
times of all that. (That an acknowledgement stops later steps is shown minute by minute with
a clock in tests/incidents/test_paging.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from opsplane.config.loader import load
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.polling import wait_for
from tests.support.serve import Serve

WATCH = """\
channels:
  named:
    pager: {{type: pagerduty, routing_key: env:PD_KEY, url: "{pagerduty}"}}
    sms: {{type: webhook, url: "{sms}"}}
oncall:
  people:
    ana: {{name: Ana Ruiz, contact: {{sms: "+15550100"}}}}
    ben: {{name: Ben Okafor, contact: {{sms: "+15550101"}}}}
  schedules:
    shop:
      timezone: UTC
      handoff: {{day: mon, time: "09:00"}}
      layers:
        primary: {{start: "2026-01-05", rotation: [ana]}}
        secondary: {{start: "2026-01-05", rotation: [ben]}}
  policies:
    paging:
      steps:
        - {{notify: ["schedule:shop/primary"], via: [sms]}}
        - {{delay: 10m, notify: ["schedule:shop/secondary"], via: [sms]}}
  severities: {{P1: paging}}
alerting:
  evaluation_interval: 1s
  builtin_rules: {{thresholds: {{check_failures: 2}}}}
  route: {{receiver: default, group_by: [alertname, service], group_wait: 1s, group_interval: 1s}}
  receivers: {{default: {{channels: [pager]}}}}
"""


Watched = tuple[DemoStack, Serve, LocalHttpServer]


@pytest.fixture(scope="module")
def incident_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    stack = DemoStack(tmp_path_factory.mktemp("incident") / "demo", paging=False, host_check=False)
    pagerduty = LocalHttpServer({"/v2/enqueue": Reply(202, b'{"status":"success"}', "application/json"),
                                 "/sms": Reply(200, b"queued")})
    serve: Serve | None = None
    with pagerduty:
        try:
            stack.start_servers()
            path = stack.write_inventory(free_port())
            text = path.read_text().replace("defaults: {interval: 5s", "defaults: {interval: 1s")
            watch = WATCH.format(pagerduty=pagerduty.url("/v2/enqueue"), sms=pagerduty.url("/sms"))
            path.write_text(text + watch)
            stack.start_shop(load(path))
            serve = Serve(stack.base, path)
            serve.env["PD_KEY"] = "shop-routing-key"
            serve.start()
            yield stack, serve, pagerduty
        finally:
            output = serve.stop() if serve is not None else ""
            stack.stop()
            assert "Traceback" not in output, output


def _events(pagerduty: LocalHttpServer) -> list[dict[str, Any]]:
    return [json.loads(seen.body) for seen in pagerduty.seen if seen.path == "/v2/enqueue"]


def _pages_about(pagerduty: LocalHttpServer, service: str) -> list[dict[str, Any]]:
    return [e for e in _events(pagerduty)
            if e["event_action"] == "trigger" and e["payload"].get("component") == service]


def _texts(gateway: LocalHttpServer) -> list[tuple[str, str]]:
    """(recipient, status) of every message the SMS gateway got."""
    bodies = [json.loads(seen.body) for seen in gateway.seen if seen.path == "/sms"]
    return [(body["to"], body["status"]) for body in bodies]


def _cli(serve: Serve, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsplane", "-c", str(serve.inventory), *args],
                          cwd=serve.workdir, env=serve.env, capture_output=True, text=True, timeout=60)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_payments_down_pages_opens_an_incident_and_ends_in_a_postmortem(incident_shop: Watched) -> None:
    stack, serve, pagerduty = incident_shop
    assert _events(pagerduty) == []  # a healthy shop pages nobody

    assert stack.runtime is not None
    stack.runtime.down(["payments"])
    [page] = wait_for(lambda: _pages_about(pagerduty, "payments"), "the page about payments", timeout=60)
    assert page["payload"]["severity"] == "error"  # CheckFailing is P1
    assert page["routing_key"] == "shop-routing-key"

    [incident] = wait_for(lambda: [i for i in json.loads(serve.cli("incident", "list", "--json"))
                                   if i["service"] == "payments"], "the incident about payments")
    assert incident["severity"] == "P1" and incident["status"] == "triggered"
    # the on-call primary is texted at once; the secondary only after 10 minutes
    wait_for(lambda: ("+15550100", "trigger") in _texts(pagerduty), "the SMS to the primary")
    acked = _cli(serve, "incident", "ack", str(incident["id"]), "--json")
    assert acked.returncode == 0, acked.stderr
    wait_for(lambda: ("+15550100", "acknowledge") in _texts(pagerduty), "the acknowledgement by SMS")

    stack.runtime.up(["payments"])
    wait_for(lambda: [e for e in _events(pagerduty) if e["event_action"] == "resolve"
                      and e["dedup_key"] == page["dedup_key"]], "the resolve of the page", timeout=60)
    resolved = _cli(serve, "incident", "resolve", str(incident["id"]), "-m", "payments restarted",
                    "--root-cause", "payments was stopped", "--json")
    assert resolved.returncode == 0, resolved.stderr

    wait_for(lambda: ("+15550100", "resolve") in _texts(pagerduty), "the resolution by SMS")
    assert [to for to, _ in _texts(pagerduty)] == ["+15550100"] * 3  # the secondary never paged

    shown = json.loads(serve.cli("incident", "show", str(incident["id"]), "--json"))
    kinds = [row["kind"] for row in shown["timeline"]]
    for kind in ("check.state_changed", "alert.firing", "alert.notified", "incident.opened",
                 "incident.acknowledged", "alert.resolved", "incident.resolved"):
        assert kind in kinds, (kind, kinds)
    started, acked_at, ended = (_when(shown[k]) for k in ("started_at", "acknowledged_at", "resolved_at"))
    assert started <= acked_at <= ended

    draft = serve.cli("incident", "postmortem", str(incident["id"]))
    for section in ("## Timeline", "## Root cause", "## Impact", "## What went well", "## What went wrong",
                    "## Action items"):
        assert section in draft, (section, draft)
    assert "payments was stopped" in draft
    assert started.strftime("%H:%M") in draft
