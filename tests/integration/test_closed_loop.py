"""The closed loop on the shop: payments runs under opsplane's runtime with `restart: never`, so a
killed payments stays down until someone restarts it. `runbooks.auto` lets the shipped
service-down runbook run unattended for payments' P0/P1 alerts.

- Killed: ServiceNotRunning fires and opens an incident, `serve` runs service-down for it, the
  runbook restarts payments, the loop sees the alerts resolve and the checks pass, and resolves
  the incident as system:runbook; its timeline tells the whole story in order.
- Killed while it cannot start again (the secret its environment names is gone): the restart
  fails, the incident stays open and unacknowledged with a note of what was tried, and paging
  goes on: the primary is paged, then the secondary.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
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
        - {{delay: 20s, notify: ["schedule:shop/secondary"], via: [sms]}}
  severities: {{P0: paging, P1: paging}}
alerting:
  evaluation_interval: 1s
  builtin_rules: {{thresholds: {{check_failures: 2}}}}
runbooks:
  auto:
    - {{severities: [P0, P1], services: [payments], verify_within: 30s}}
"""

Shop = tuple[DemoStack, Serve, LocalHttpServer]


def without_restarts(text: str, service: str) -> str:
    """The demo inventory with `restart: never` in `service`'s run section."""
    head, _, tail = text.partition(f"\n  {service}:\n")
    backoff = "      backoff: {initial: 1s, max: 20s}\n"
    assert backoff in tail
    return f"{head}\n  {service}:\n" + tail.replace(backoff, backoff + "      restart: never\n", 1)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    stack = DemoStack(tmp_path_factory.mktemp("loop") / "demo", traffic=False, paging=False,
                      host_check=False, proxy=False, backups=False)
    serve: Serve | None = None
    with LocalHttpServer({"/sms": Reply(200, b"queued")}) as gateway:
        try:
            stack.start_servers()
            path = stack.write_inventory(free_port())
            text = path.read_text().replace("defaults: {interval: 5s", "defaults: {interval: 1s")
            path.write_text(without_restarts(text, "payments") + WATCH.format(sms=gateway.url("/sms")))
            stack.start_shop(load(path))
            serve = Serve(stack.base, path)
            serve.start()
            yield stack, serve, gateway
        finally:
            output = serve.stop() if serve is not None else ""
            stack.stop()
    assert "Traceback" not in output, output


def kill_payments(stack: DemoStack) -> None:
    [instance] = [s for s in stack.runtime.status() if s.service == "payments" and s.state == "running"]
    os.kill(instance.pid, signal.SIGKILL)


def incident_of(serve: Serve, seen: set[int]) -> dict[str, Any] | None:
    """The incident about payments opened after those in `seen`."""
    found = [i for i in serve.read("incident", "list") if i["service"] == "payments" and i["id"] not in seen]
    return found[0] if found else None


def payments_ok(serve: Serve) -> bool:
    """Whether `opsplane health` finds payments answering (OK, or slow on a busy machine)."""
    states = [s["state"] for s in serve.read("health", "--service", "payments")["services"]]
    return states in (["OK"], ["WARNING"])


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


def pages(gateway: LocalHttpServer) -> list[tuple[str, str]]:
    """(recipient, status) of each text the SMS gateway got."""
    bodies = [json.loads(seen.body) for seen in gateway.seen if seen.path == "/sms"]
    return [(body["to"], body["status"]) for body in bodies]


def test_a_killed_service_is_restarted_by_its_runbook_and_the_incident_resolved(shop: Shop) -> None:
    stack, serve, _ = shop
    wait_for(lambda: payments_ok(serve), "payments checked OK", timeout=30)
    kill_payments(stack)

    opened = wait_for(lambda: incident_of(serve, set()), "an incident about payments", timeout=30)
    shown = wait_for(lambda: (s := serve.read("incident", "show", str(opened["id"])))["status"] == "resolved"
                     and s, "the loop to resolve the incident", timeout=90)

    [run] = [r for r in serve.read("runbook", "runs") if r["incident"] == opened["id"]]
    assert (run["runbook"], run["mode"], run["state"]) == ("service-down", "auto", "succeeded")
    assert run["requested_by"] == "system:runbook" and run["parameters"] == {"service": "payments"}
    update = shown["updates"][-1]
    assert (update["status"], update["author"]) == ("resolved", "system:runbook")
    assert "recovery was verified" in update["summary"]
    assert "opsplane logs payments --since 10m" in shown["root_cause"]

    timeline = shown["timeline"]
    kinds = [entry["kind"] for entry in timeline]
    steps = list(dict.fromkeys(re.search(r": step (\S+) \(", e["what"]).group(1)  # type: ignore[union-attr]
                               for e in timeline if e["kind"] == "runbook.step"))
    assert steps == ["look", "which", "runtime", "restart", "back", "errors", "why"]
    at = kinds.index
    assert (at("alert.firing") < at("incident.opened") < at("runbook.started") < at("runbook.step")
            < at("runbook.finished") < at("runbook.recovered") < at("incident.resolved"))
    [restarted] = [e for e in timeline if e["kind"] == "runtime.restarted"]
    assert restarted["actor"] == "system:runbook"
    assert at("runbook.started") < kinds.index("runtime.restarted") < at("runbook.recovered")
    assert [s["state"] for s in serve.read("ps") if s["service"] == "payments"] == ["running"]


def test_a_service_that_cannot_come_back_leaves_the_incident_open_and_paging_on(shop: Shop) -> None:
    stack, serve, gateway = shop
    earlier = {i["id"] for i in serve.read("incident", "list")}
    wait_for(lambda: payments_ok(serve), "payments checked OK", timeout=30)
    secret = stack.base / "secrets" / "shop-admin-token"
    kept = secret.read_text()
    secret.unlink()  # the supervisor cannot start payments again: its environment names this file
    try:
        kill_payments(stack)
        opened = wait_for(lambda: incident_of(serve, earlier), "a new incident about payments", timeout=30)
        ref = str(opened["id"])

        [note] = wait_for(lambda: [e["details"]["note"] for e in events(serve, "incident.note")
                                   if e["target"] == f"INC-{ref}"], "the loop to hand the incident over",
                          timeout=60)
        shown = serve.read("incident", "show", ref)
        assert shown["status"] == "triggered" and shown["acknowledged_at"] is None
        assert "a person must take over" in note and "Paging goes on" in note
        assert "- look (check): failed" in note and "- restart (action): failed" in note
        kinds = [e["kind"] for e in shown["timeline"]]
        at = kinds.index
        assert at("runbook.finished") < at("runbook.escalated") < at("incident.note")
        [run] = [r for r in serve.read("runbook", "runs") if r["incident"] == opened["id"]]
        assert run["state"] == "failed"

        # nobody acknowledged it: the primary was paged, and the secondary is paged in turn
        wait_for(lambda: ("+15550101", "trigger") in pages(gateway), "the page to the secondary", timeout=60)
        assert ("+15550100", "trigger") in pages(gateway)
        assert serve.read("incident", "show", ref)["status"] == "triggered"
    finally:
        secret.write_text(kept)
