"""A hard-down service pages at once: `serve` runs the rules as soon as a scrape finds a target
down (not at the next evaluation interval), and the default route sends a P0 without waiting
Alertmanager's 30 s group_wait."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from opsplane.drivers.channels.webhook import verify
from tests.alerts.webhook import WebhookServer
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.polling import wait_for
from tests.support.serve import Serve

METRICS = Reply(body=b"# TYPE http_requests_total counter\nhttp_requests_total 7\n")


def inventory(path: Path, port: int, hook: str) -> Path:
    path.write_text(
        "platform: {name: shop}\n"
        "defaults: {interval: 300ms, timeout: 1s}\n"
        f"services:\n  payments: {{port: {port}, metrics_path: /metrics, checks: []}}\n"
        "alerting:\n"
        "  evaluation_interval: 1h\n"  # only a change can start a cycle within this test
        "  builtin_rules: {enabled: false}\n"
        "  rules:\n"
        "    - {name: PaymentsDown, expr: 'up{service=\"payments\"} == 0', for: 0s, severity: P0}\n"
        f"  receivers: {{default: {{webhook: {{url: '{hook}'}}}}}}\n")
    return path


def firing(hook: WebhookServer) -> list[dict[str, Any]]:
    return [alert for _, body in hook.received for alert in body["alerts"]
            if alert["labels"]["alertname"] == "PaymentsDown" and alert["status"] == "firing"]


def test_a_target_going_down_pages_a_p0_without_waiting(tmp_path: Path) -> None:
    with WebhookServer() as hook:
        target = LocalHttpServer({"/metrics": METRICS}).__enter__()
        serve = Serve(tmp_path, inventory(tmp_path / "opsplane.yaml", target.port, hook.url))
        serve.start()
        try:
            wait_for(lambda: any(s.path == "/metrics" for s in target.seen), "a first scrape")
            assert hook.received == []
            target.__exit__(None, None, None)
            # group_wait would hold the page for 30 s and the evaluation interval for an hour
            [alert] = wait_for(lambda: firing(hook), "the PaymentsDown page", timeout=20)
            assert alert["labels"]["severity"] == "P0"
            assert alert["labels"]["service"] == "payments"
            command = [sys.executable, "-m", "opsplane", "-c", str(serve.inventory), "alerts", "--json"]
            shown = subprocess.run(command, cwd=serve.workdir, env=serve.env, capture_output=True, text=True)
            assert shown.returncode == 2, shown.stderr  # a P0 is firing
            shown_alerts = json.loads(shown.stdout)["alerts"]
            assert [a["state"] for a in shown_alerts if a["name"] == "PaymentsDown"] == ["firing"]
        finally:
            output = serve.stop()
        assert "Traceback" not in output, output


def test_a_page_reaches_a_channel_through_the_outbox_signed(tmp_path: Path) -> None:
    # The same fault with a receiver that names a channel: serve queues the page in the outbox
    # and its dispatcher delivers it, signed, to the channel's webhook.
    with LocalHttpServer({"/hook": Reply(204, b"")}) as channel:
        target = LocalHttpServer({"/metrics": METRICS}).__enter__()
        path = tmp_path / "opsplane.yaml"
        inventory(path, target.port, "http://127.0.0.1:9/unused")
        text = path.read_text().replace(
            "  receivers: {default: {webhook: {url: 'http://127.0.0.1:9/unused'}}}\n",
            "  receivers: {default: {channels: [ops]}}\n")
        ops = f"{{type: webhook, url: '{channel.url('/hook')}', secret: env:HOOK_SECRET}}"
        path.write_text(f"{text}channels:\n  named:\n    ops: {ops}\n")
        serve = Serve(tmp_path, path)
        serve.env["HOOK_SECRET"] = "shared-secret"
        serve.start()
        try:
            wait_for(lambda: any(s.path == "/metrics" for s in target.seen), "a first scrape")
            target.__exit__(None, None, None)
            [delivery] = wait_for(lambda: [s for s in channel.seen if s.path == "/hook"],
                                  "the page at the channel", timeout=20)
        finally:
            output = serve.stop()
        assert "Traceback" not in output, output
    message = json.loads(delivery.body)
    assert (message["status"], message["severity"], message["service"]) == ("trigger", "P0", "payments")
    assert delivery.headers["idempotency-key"] == message["key"]
    timestamp, signature = delivery.headers["x-opsplane-timestamp"], delivery.headers["x-opsplane-signature"]
    assert verify("shared-secret", timestamp, delivery.body, signature, now=int(timestamp))
