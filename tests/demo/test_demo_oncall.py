"""The demo's inventory has an on-call rotation of two people and a console channel, wired to
the alert receivers and to escalation: the on-call commands answer, a test notification is
delivered, and a real `serve` pages the primary on call on its own output and follows with
the acknowledgement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsplane.config.loader import load
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port
from tests.support.polling import wait_for
from tests.support.serve import Serve


def demo_inventory(tmp_path: Path) -> Path:
    """The inventory `opsplane demo` writes (here without PostgreSQL and Redis)."""
    stack = DemoStack(tmp_path / "demo")
    (stack.base / "secrets").mkdir(parents=True)
    return stack.write_inventory(free_port())


def delivered(serve: Serve, key_prefix: str) -> list[dict[str, Any]]:
    events = serve.read("events", "--kind", "notify.delivered", "--since", "1h")
    return [e for e in events if e["target"].startswith(f"console:{key_prefix}")]


def test_the_demo_inventory_pages_its_on_call_rotation_on_the_console(tmp_path: Path) -> None:
    inventory = demo_inventory(tmp_path)
    loaded = load(inventory)
    assert set(loaded.oncall.people) == {"ana", "ben"}
    assert loaded.alerting.receivers["default"].channels == ["console"]
    serve = Serve(inventory.parent, inventory)

    [shop] = serve.read("oncall", "now")["schedules"]
    holders = {layer["layer"]: layer["display_name"] for layer in shop["layers"]}
    assert set(holders) == {"primary", "secondary"}
    assert sorted(holders.values()) == ["Ana Silva", "Ben Okafor"]
    shifts = serve.read("oncall", "schedule", "--weeks", "2")
    weeks = sorted({s["start"] for s in shifts})
    on_call = {(s["start"], s["layer"]): s["person"] for s in shifts}
    primaries = [on_call[week, "primary"] for week in weeks]
    # the two take turns week by week, the secondary always the other one
    assert len(weeks) >= 3 and primaries[0] != primaries[1]
    assert primaries[0] == primaries[2]
    assert all(on_call[week, "secondary"] != on_call[week, "primary"] for week in weeks)
    assert "delivered to console" in serve.cli("notify", "test", "console", "--wait", "10s")

    serve.start()
    try:
        opened = json.loads(serve.cli("incident", "open", "--service", "payments", "--severity", "P1",
                                      "--title", "charges failing", "--json"))
        number = opened["id"]
        wait_for(lambda: delivered(serve, f"escalation:{number}:"), "the page to the primary", timeout=30,
                 interval=0.3)
        assert serve.read("incident", "list", "--open")[0]["id"] == number
        serve.cli("incident", "ack", str(number))
        wait_for(lambda: delivered(serve, f"incident:{number}:incident.acknowledged"),
                 "the acknowledgement on the console", timeout=30, interval=0.3)
    finally:
        code, output = serve.terminate()

    assert code == 0, output
    page = output.split(f"[P1] payments: INC-{number}: charges failing", 1)[1]
    assert f"Escalation step 1 for {holders['primary']} (primary of shop)" in page
    assert f"Acknowledge: opsplane incident ack {number}" in page
    assert f"[P1 ACKNOWLEDGED] payments: INC-{number} acknowledged by" in page
