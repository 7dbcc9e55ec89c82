"""A hard-down service pages at once: `serve` runs the rules as soon as a scrape finds a target
down (not at the next evaluation interval), and the default route sends a P0 without waiting
Alertmanager's 30 s group_wait."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsplane.drivers.channels.webhook import verify
from opsplane.drivers.sandbox.ports import free_port
from opsplane.health.scheduler import phase
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


# --- a service run by opsplane's runtime ----------------------------------------------------
# Its one check runs once a minute, in a slot 52.5 s into serve's minute (a hash of its id,
# `payments/liveness`): a check and a page before that slot can only come from the runtime's
# exit notice. The route pages at once and lets an alert page again a second after it
# resolved, so a second outage is not held back by the first one's group.

APP = Path(__file__).resolve().parent.parent / "runtime" / "service_app.py"
CHECK = "payments/liveness"


def runtime_inventory(path: Path, port: int, hook: str, extra: str = "") -> Path:
    run = {"argv": [sys.executable, str(APP), "{port}"], "restart": "never", "stop_timeout": "3s"}
    path.write_text(
        "platform: {name: shop}\n"
        "defaults: {interval: 60s, timeout: 2s}\n"
        "services:\n"
        f"  payments: {{port: {port}, criticality: critical, run: {json.dumps(run)},\n"
        "             checks: [{name: liveness, type: http, path: /health}]}\n"
        f"{extra}"
        "alerting:\n"
        "  evaluation_interval: 1h\n"
        "  route: {receiver: default, group_wait: 0s, group_interval: 1s}\n"
        f"  receivers: {{default: {{webhook: {{url: '{hook}'}}}}}}\n")
    return path


def events(serve: Serve, kind: str) -> list[dict[str, Any]]:
    """The events of `kind` in serve's store, oldest first."""
    from opsplane.events.service import get_all
    from opsplane.store import Store

    store = Store.open(serve.env["OPSPLANE_DATABASE_URL"])
    try:
        with store.session() as session:
            return [e.as_dict() for e in get_all(session, kind=kind, limit=1000)][::-1]
    finally:
        store.close()


def checked(serve: Serve, state: str, service: str = "payments") -> list[dict[str, Any]]:
    return [e for e in events(serve, "check.state_changed")
            if e["service"] == service and e["details"]["to"] == state]


def pages(hook: WebhookServer, name: str = "ServiceNotRunning") -> list[dict[str, Any]]:
    return [alert for _, body in hook.received for alert in body["alerts"]
            if alert["labels"]["alertname"] == name and alert["status"] == "firing"]


def first_slot(serve: Serve) -> datetime:
    """When serve's scheduler first runs payments' check on its own: its phase after the start."""
    started = datetime.fromisoformat(events(serve, "control_plane.started")[-1]["ts"])
    return started + timedelta(seconds=phase(CHECK, 60.0))


def kill_payments(runtime: Any) -> int:
    [instance] = [s for s in runtime.status() if s.service == "payments"]
    os.kill(instance.pid, signal.SIGKILL)
    return int(instance.pid)


def back_up(serve: Serve) -> bool:
    """Whether payments' check found it OK after its last failure."""
    ok, failed = checked(serve, "OK"), checked(serve, "CRITICAL")
    return bool(ok) and (not failed or ok[-1]["ts"] > failed[-1]["ts"])


def assert_checked_and_paged_before_its_slot(serve: Serve, hook: WebhookServer, killed: int,
                                             seen: int) -> None:
    """After the process `killed` exited: its check found it down and the page went out, both
    before the check's first slot. `seen` is how many pages came before."""
    wait_for(lambda: len(pages(hook)) > seen, "the ServiceNotRunning page", timeout=30)
    [exited] = wait_for(lambda: [e for e in events(serve, "runtime.exited") if e["details"]["pid"] == killed],
                        "the exit in the event log")
    exit_at = datetime.fromisoformat(exited["ts"])

    def since_exit(found: list[dict[str, Any]]) -> list[datetime]:
        return [at for at in (datetime.fromisoformat(e["ts"]) for e in found) if at >= exit_at]

    # state changes are written in batches: the page may be out before its check is stored
    [down, *_] = wait_for(lambda: since_exit(checked(serve, "CRITICAL")), "payments checked down")
    [fired, *_] = since_exit([e for e in events(serve, "alert.firing") if e["target"] == "ServiceNotRunning"])
    assert exit_at <= down < first_slot(serve)
    assert exit_at <= fired < first_slot(serve)
    alert = pages(hook)[-1]
    assert (alert["labels"]["service"], alert["labels"]["severity"]) == ("payments", "P0")


def test_the_check_slot_leaves_the_tests_below_a_minute_to_themselves() -> None:
    assert phase(CHECK, 60.0) > 45


def test_a_runtime_service_that_exits_is_checked_and_paged_before_its_slot(tmp_path: Path) -> None:
    from opsplane.config.loader import load
    from opsplane.drivers.runtime.process import ProcessRuntime

    with WebhookServer() as hook:
        serve = Serve(tmp_path, runtime_inventory(tmp_path / "opsplane.yaml", free_port(), hook.url))
        runtime = ProcessRuntime(load(serve.inventory), base_dir=tmp_path, environ=serve.env)
        runtime.up()
        try:
            serve.start()
            # following the runtime from the start, serve checks what it runs at once
            wait_for(lambda: checked(serve, "OK"), "payments checked")
            assert pages(hook) == []
            killed = kill_payments(runtime)
            assert_checked_and_paged_before_its_slot(serve, hook, killed, seen=0)
            shown = serve.read("alerts")["alerts"]
            assert [a["state"] for a in shown if a["name"] == "ServiceNotRunning"] == ["firing"]
        finally:
            output = serve.stop()
            runtime.down()
    assert "Traceback" not in output, output


def test_serve_works_without_a_runtime_and_follows_one_through_a_supervisor_crash(tmp_path: Path) -> None:
    from opsplane.config.loader import load
    from opsplane.drivers.runtime.process import ProcessRuntime
    from opsplane.drivers.runtime.protocol import read_state

    # orders is not run by the runtime: its check on a closed port pages as it always did. A
    # notification held by the group's timer (the second outage, in orders' group) goes out at
    # the next cycle, hence cycles every second here.
    orders = f"  orders: {{port: {free_port()}, checks: [{{type: tcp, interval: 300ms}}]}}\n"
    with WebhookServer() as hook:
        path = runtime_inventory(tmp_path / "opsplane.yaml", free_port(), hook.url, extra=orders)
        path.write_text(path.read_text().replace("  evaluation_interval: 1h\n", "  evaluation_interval: 1s\n"
                                                 "  builtin_rules: {thresholds: {check_failures: 2}}\n"))
        serve = Serve(tmp_path, path)
        runtime = ProcessRuntime(load(serve.inventory), base_dir=tmp_path, environ=serve.env)
        serve.start()  # no supervisor: nothing started by `opsplane up` runs yet
        try:
            wait_for(lambda: pages(hook, "CheckFailing"), "orders' CheckFailing page")
            runtime.up()
            wait_for(lambda: back_up(serve), "payments checked once the runtime runs it")
            killed = kill_payments(runtime)
            assert_checked_and_paged_before_its_slot(serve, hook, killed, seen=0)

            # Started again, then its supervisor dies (payments runs on, unsupervised) and `up`
            # starts a new one, which replaces it: serve follows the new supervisor.
            runtime.up()
            wait_for(lambda: back_up(serve), "payments checked OK again")
            supervisor = (read_state(runtime.paths) or {})["supervisor"]["pid"]
            os.kill(supervisor, signal.SIGKILL)
            runtime.up()
            wait_for(lambda: runtime.supervisor_pid() not in (None, supervisor), "a new supervisor")
            wait_for(lambda: back_up(serve), "payments checked OK under the new supervisor")
            seen = len(pages(hook))
            killed = kill_payments(runtime)
            assert_checked_and_paged_before_its_slot(serve, hook, killed, seen=seen)
        finally:
            output = serve.stop()
            runtime.down()
    assert "Traceback" not in output, output
