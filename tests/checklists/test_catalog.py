"""The shipped checklists load against the demo's inventory and any other; a checklist file of
the site's own that would change something, or a schedule naming no checklist, is refused at
its file, line and field; the schedule follows the manual's cadence unless told otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsplane.checklists.loader import catalog
from opsplane.config.loader import load, loads
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port
from opsplane.errors import ConfigError

SHIPPED = ["afternoon", "end-of-day", "monthly", "morning", "weekly"]


def test_the_shipped_checklists_load_against_the_demo_inventory(tmp_path: Path) -> None:
    stack = DemoStack(tmp_path / "demo")
    (stack.base / "secrets").mkdir(parents=True)
    path = stack.write_inventory(free_port())
    inventory = load(path)
    found = catalog(inventory, path.parent, inventory_file=path)
    assert list(found) == SHIPPED
    for checklist in found.values():
        assert {step.kind for step in checklist.runbook.steps} <= {"check", "query", "report", "note"}
        assert all(step.safe for step in checklist.runbook.steps)
    morning = [s.read for s in found["morning"].runbook.steps if s.kind == "report"]
    assert {"health.checks", "backup.status", "backup.archive", "incidents.open", "alerts.firing",
            "host.disk", "host.memory"} <= set(morning)
    # the demo's inventory turns the schedule on at the manual's times
    assert inventory.checklists is not None
    assert inventory.checklists.planned() == {
        "morning": ("0 9 * * *", "UTC"), "afternoon": ("0 15 * * *", "UTC"),
        "end-of-day": ("0 18 * * *", "UTC"), "weekly": ("0 10 * * 1", "UTC"),
        "monthly": ("0 10 1 * *", "UTC")}


def test_schedules_change_a_time_turn_a_list_off_and_add_the_sites_own(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "db.yaml").write_text(
        "name: db-round\ntitle: Database round\nsteps:\n  - {id: wal, kind: report, read: backup.archive}\n")
    inventory = loads("""
platform: {name: shop}
checklists:
  dir: lists
  timezone: Europe/Berlin
  schedules:
    morning: {at: "08:00"}
    monthly: {enabled: false}
    weekly: {cron: "30 16 * * 5", timezone: UTC}
    db-round: {at: "7:05"}
""")
    assert inventory.checklists is not None
    planned = inventory.checklists.planned()
    assert planned["morning"] == ("0 8 * * *", "Europe/Berlin")
    assert planned["weekly"] == ("30 16 * * 5", "UTC")
    assert planned["db-round"] == ("5 7 * * *", "Europe/Berlin")
    assert "monthly" not in planned
    assert list(catalog(inventory, tmp_path)) == ["afternoon", "db-round", *SHIPPED[1:]]


def test_a_checklist_step_that_changes_something_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "morning.yaml").write_text(
        "name: morning\ntitle: Ours\nsteps:\n"
        "  - {id: look, kind: report, read: incidents.open}\n"
        "  - {id: fix, kind: command, argv: [/bin/true]}\n")
    inventory = loads("platform: {name: shop}\nchecklists: {dir: lists}\n")
    with pytest.raises(ConfigError) as refused:
        catalog(inventory, tmp_path)
    [problem] = refused.value.problems
    assert (problem.file.endswith("morning.yaml"), problem.line, problem.field) == (True, 5, "steps[1].kind")
    assert "a checklist step is one of check, query, report, note" in problem.message


def test_a_schedule_naming_no_checklist_is_refused_in_the_inventory(tmp_path: Path) -> None:
    path = tmp_path / "opsplane.yaml"
    path.write_text("platform: {name: shop}\nchecklists:\n  schedules:\n    mornig: {at: '08:00'}\n")
    with pytest.raises(ConfigError) as refused:
        catalog(load(path), tmp_path, inventory_file=path)
    [problem] = refused.value.problems
    assert (problem.line, problem.field) == (4, "checklists.schedules.mornig")
    assert "no checklist named 'mornig'" in problem.message


@pytest.mark.parametrize(("given", "said"), [
    ("{at: '25:00'}", 'expected a time of day "HH:MM"'),
    ("{cron: '0 9 * *'}", "expected 5 fields"),
    ("{at: '08:00', cron: '0 9 * * *'}", "give at or cron, not both"),
    ("{timezone: Mars/Olympus}", "unknown time zone 'Mars/Olympus'"),
])
def test_a_bad_schedule_is_refused_when_the_inventory_loads(given: str, said: str) -> None:
    with pytest.raises(ConfigError) as refused:
        loads(f"platform: {{name: shop}}\nchecklists:\n  schedules:\n    morning: {given}\n")
    assert any(said in p.message and p.field.startswith("checklists.schedules.morning")
               for p in refused.value.problems), refused.value.problems
