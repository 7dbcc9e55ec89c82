"""A real Prometheus sends its alerts to `opsplane serve` as to an Alertmanager: it scrapes a
target of ours every second, its rule `up{job="x"} == 0` fires when the target stops, and
opsplane's webhook receiver gets that alert once, then its resolve when the target is back."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.sandbox.prometheus import TemporaryPrometheus
from tests.support.polling import wait_for
from tests.support.serve import Serve, signed_in_client
from tests.support.webhook import Hook

pytestmark = pytest.mark.slow

INVENTORY = """\
platform: {{name: shop}}
services:
  x: {{port: {target_port}}}
alerting:
  evaluation_interval: 1s
  route: {{receiver: hook, group_by: [alertname], group_wait: 1s, group_interval: 1s}}
  receivers:
    hook: {{webhook: {{url: "http://127.0.0.1:{hook_port}/hook"}}}}
"""
RULES = {"groups": [{"name": "x", "rules": [{
    "alert": "TargetDown", "expr": 'up{job="x"} == 0',
    "labels": {"severity": "critical"}, "annotations": {"summary": "{{ $labels.instance }} is down"},
}]}]}


class Target:
    """A /metrics endpoint on a fixed loopback port that can be stopped and started again."""

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = b"x_ready 1\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    def __init__(self) -> None:
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Target, Serve, Hook, TemporaryPrometheus]]:
    target, hook = Target(), Hook()
    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text(INVENTORY.format(target_port=target.port, hook_port=hook.port))
    serve = Serve(tmp_path, inventory)
    created = serve.cli("token", "create", "--name", "prometheus", "--role", "responder", "--json")
    token_file = tmp_path / "opsplane-token"
    token_file.write_text(json.loads(created)["token"])
    prometheus = TemporaryPrometheus(
        tmp_path / "prometheus", scrape_targets=[f"127.0.0.1:{target.port}"], job_name="x", rules=RULES,
        alertmanagers=[{
            "api_version": "v2", "path_prefix": "/", "timeout": "5s",
            "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
            "static_configs": [{"targets": [f"127.0.0.1:{serve.port}"]}],
        }],
    )
    (tmp_path / "prometheus").mkdir()
    output = ""
    try:
        target.start()
        serve.start()
        prometheus.start()
        yield target, serve, hook, prometheus
    finally:
        prometheus.stop()
        output = serve.stop()
        target.stop()
        hook.close()
    assert "Traceback" not in output, output


def _alerts(serve: Serve) -> tuple[int, list[dict[str, object]]]:
    shown = subprocess.run([sys.executable, "-m", "opsplane", "-c", str(serve.inventory), "alerts", "--json"],
                           cwd=serve.workdir, env=serve.env, capture_output=True, text=True, timeout=60)
    return shown.returncode, json.loads(shown.stdout)["alerts"]


def test_a_prometheus_alert_pages_once_through_opsplane_and_resolves(watched) -> None:
    target, serve, hook, prometheus = watched
    wait_for(lambda: prometheus.query('up{job="x"} == 1', time.time())["result"], "a first scrape")
    assert hook.statuses("TargetDown") == []  # a target that answers pages nobody

    target.stop()
    wait_for(lambda: "firing" in hook.statuses("TargetDown"), "the firing notification", timeout=30)
    [message] = [m for m in hook.received if m["status"] == "firing"]
    [alert] = message["alerts"]
    assert alert["labels"]["severity"] == "P1" and alert["labels"]["original_severity"] == "critical"
    assert alert["labels"]["instance"] == f"127.0.0.1:{target.port}"
    assert alert["annotations"]["summary"] == f"127.0.0.1:{target.port} is down"
    assert "/graph?" in alert["generatorURL"]
    code, shown = _alerts(serve)
    assert code == 2  # a P1 fires
    [row] = [a for a in shown if a["name"] == "TargetDown"]
    assert row["state"] == "firing" and row["source"] == "prometheus"
    viewer = json.loads(serve.cli("token", "create", "--name", "wall", "--role", "viewer", "--json"))["token"]
    with signed_in_client(serve.url, viewer) as browser:
        page = browser.get("/ui/alerts")
    assert '<tr data-alert="TargetDown">' in page.text

    # a restart of serve while the alert fires: kept in the store, not paged again. The
    # restarted serve runs its cycles (every second) while Prometheus notices the target is
    # back and sends the resolution; a second page would arrive before that resolution.
    serve.terminate()
    serve.start()
    target.start()
    wait_for(lambda: "resolved" in hook.statuses("TargetDown"), "the resolved notification", timeout=30)
    assert hook.statuses("TargetDown") == ["firing", "resolved"]
    fired = json.loads(serve.cli("events", "--kind", "alert.firing", "--json"))
    assert [e["details"]["sender"] for e in fired] == ["token:prometheus"]
