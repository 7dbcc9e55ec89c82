"""`kill -9` of `serve` in the middle of an escalation: after the restart the step that fell
due is sent once, and the page already sent is not sent again."""

from __future__ import annotations

import json
from pathlib import Path

from opsplane.drivers.sandbox.ports import free_port
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.polling import wait_for
from tests.support.serve import Serve

INVENTORY = """\
platform: {{name: shop}}
defaults: {{interval: 300ms, timeout: 1s}}
services:
  payments: {{port: {closed}, checks: [{{type: tcp}}]}}
alerting:
  evaluation_interval: 1s
  builtin_rules: {{thresholds: {{check_failures: 2}}}}
channels:
  named:
    sms: {{type: webhook, url: "{sms}"}}
oncall:
  people:
    ana: {{contact: {{sms: "+15550100"}}}}
    ben: {{contact: {{sms: "+15550101"}}}}
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
        - {{delay: 6s, notify: ["schedule:shop/secondary"], via: [sms]}}
  severities: {{P1: paging}}
"""


def _texts(gateway: LocalHttpServer) -> list[str]:
    """The recipient of every escalation page the SMS gateway got, in arrival order."""
    bodies = [json.loads(seen.body) for seen in gateway.seen if seen.path == "/sms"]
    return [body["to"] for body in bodies if body["status"] == "trigger"]


def test_a_restart_mid_escalation_sends_the_next_step_once_and_nothing_twice(tmp_path: Path) -> None:
    with LocalHttpServer({"/sms": Reply(200, b"queued")}) as gateway:
        path = tmp_path / "opsplane.yaml"
        path.write_text(INVENTORY.format(closed=free_port(), sms=gateway.url("/sms")))
        serve = Serve(tmp_path, path)
        serve.start()
        try:
            wait_for(lambda: _texts(gateway) == ["+15550100"], "the page to the primary", timeout=30)
            serve.kill()  # SIGKILL: nothing is flushed, nothing is said goodbye
            serve.start()
            wait_for(lambda: "+15550101" in _texts(gateway), "the page to the secondary", timeout=30)
        finally:
            output = serve.stop()
        assert "Traceback" not in output, output
    assert _texts(gateway) == ["+15550100", "+15550101"]
