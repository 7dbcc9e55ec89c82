"""`opsplane oncall` as a person runs it: a temporary inventory and SQLite store, the real
command in a subprocess, JSON and exit codes checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import icalendar
import pytest

from tests.oncall.factories import oncall_data
from tests.support.cli import Opsplane

pytestmark = pytest.mark.slow


def _inventory(oncall: dict[str, Any] | None) -> dict[str, Any]:
    return {"platform": {"name": "shop"}, **({"oncall": oncall} if oncall is not None else {})}


@pytest.fixture
def opsplane(tmp_path: Path) -> Opsplane:
    return Opsplane(tmp_path, _inventory(oncall_data()))


def test_now_names_each_layers_person_and_shows_the_last_handoff_note(opsplane: Opsplane) -> None:
    opsplane("oncall", "handoff", "--note", "db-2 disk at 70%, watch it")
    shown = opsplane.json("oncall", "now", "--at", "2026-03-04T11:00")
    [platform] = shown["schedules"]
    assert [(x["layer"], x["person"], x["display_name"]) for x in platform["layers"]] == [
        ("primary", "ana", "Ana Silva"), ("secondary", "ben", "Ben Okafor")]
    assert platform["layers"][0]["contact"]["pagerduty"] == "PANA"
    assert platform["handoff"]["note"] == "db-2 disk at 70%, watch it"
    table = opsplane("oncall", "now", "--at", "2026-03-04T11:00").stdout
    assert "Ana Silva" in table and "Mon 2026-03-09 09:00 CET" in table and "db-2 disk" in table
    [event] = opsplane.json("events", "--kind", "oncall.handoff")
    assert event["actor"].startswith("cli:") and event["details"]["on_call"]


def test_override_and_swap_show_in_the_schedule_and_the_calendar(opsplane: Opsplane, tmp_path: Path) -> None:
    opsplane("oncall", "override", "--layer", "primary", "--person", "dan",
             "--start", "2026-03-04T12:00", "--end", "8h")
    opsplane("oncall", "swap", "--layer", "secondary", "--shift", "2026-03-09", "--with", "2026-03-18")
    shifts = opsplane.json("oncall", "schedule", "--from", "2026-03-02T10:00", "--weeks", "2")
    primary = [(s["person"], s["source"]) for s in shifts if s["layer"] == "primary"]
    assert primary == [("ana", "rotation"), ("dan", "override"), ("ana", "rotation"),
                       ("ben", "rotation"), ("cleo", "rotation")]
    dan = next(s for s in shifts if s["person"] == "dan")
    assert (dan["start"], dan["end"]) == ("2026-03-04T11:00:00+00:00", "2026-03-04T19:00:00+00:00")
    secondary = [(s["person"], s["source"]) for s in shifts if s["layer"] == "secondary"]
    assert secondary == [("ben", "rotation"), ("ana", "swap"), ("cleo", "swap")]
    kinds = [e["kind"] for e in opsplane.json("events", "--kind", "oncall.*")]
    assert kinds == ["oncall.swap", "oncall.override"]

    wrote = opsplane("oncall", "ical", "--out", "oncall.ics", "--weeks", "2")
    assert "shifts to oncall.ics" in wrote.stdout
    calendar = icalendar.Calendar.from_ical((tmp_path / "oncall.ics").read_bytes())
    assert len(calendar.walk("VEVENT")) >= 4
    assert (tmp_path / "oncall.ics").read_bytes().count(b"\r\n") > 10


def test_escalation_lists_the_p0_steps_of_the_manual(opsplane: Opsplane) -> None:
    shown = opsplane.json("oncall", "escalation", "P0")
    assert shown["policy"] == "p0"
    assert [s["offset_seconds"] for s in shown["steps"]] == [0, 300, 1800, 2700, 3600]
    assert [r["target"] for r in shown["steps"][0]["recipients"]] == ["layer:primary", "channel:incidents"]
    assert shown["steps"][2]["recipients"][0]["name"] == "tina"


def test_a_mistake_on_the_command_line_is_a_message_and_exit_code_3(opsplane: Opsplane) -> None:
    ran = opsplane("oncall", "override", "--layer", "primary", "--person", "zoe",
                   "--start", "2026-03-04T12:00", "--end", "8h", code=3)
    assert "unknown person 'zoe'" in ran.stderr
    ran = opsplane("oncall", "now", "--at", "next tuesday", code=3)
    assert "cannot read time 'next tuesday'" in ran.stderr
    assert opsplane.json("events", "--kind", "oncall.*") == []


def test_an_unknown_person_in_a_rotation_is_reported_with_file_and_line(tmp_path: Path) -> None:
    data = oncall_data()
    data["schedules"]["platform"]["layers"]["primary"]["rotation"] = ["ana", "bob"]
    ran = Opsplane(tmp_path, _inventory(data))("oncall", "now", code=3)
    assert "opsplane.yaml:" in ran.stderr
    assert "oncall.schedules.platform.layers.primary.rotation[1]: unknown person 'bob'" in ran.stderr


def test_without_schedules_now_says_what_to_add(tmp_path: Path) -> None:
    ran = Opsplane(tmp_path, _inventory(None))("oncall", "now", code=3)
    assert "no on-call schedules in the inventory; add oncall.schedules" in ran.stderr
