"""`opsplane incident` and `opsplane report incidents` as a person runs them: a temporary
inventory and SQLite store, the real command in a subprocess, JSON and exit codes checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import Opsplane

pytestmark = pytest.mark.slow


@pytest.fixture
def opsplane(tmp_path: Path) -> Opsplane:
    return Opsplane(tmp_path, {
        "platform": {"name": "shop"}, "services": {"orders": {"port": 8001}},
        "incidents": {"severities": {"P2": {"response_time": "30m", "resolution_target": "8h"}}}})


def test_an_incident_from_open_to_post_mortem(opsplane: Opsplane, tmp_path: Path) -> None:
    opened = opsplane.json("incident", "open", "--service", "orders", "--severity", "p1",
                           "--title", "Checkout fails")
    assert (opened["ref"], opened["severity"], opened["status"]) == ("INC-1", "P1", "triggered")
    assert opened["targets"]["response_time"] == 900
    acked = opsplane.json("incident", "ack", "INC-1")
    assert acked["commander"] == "ana" and acked["status"] == "acknowledged"
    update = opsplane.json("incident", "update", "1", "--status", "identified", "--summary",
                           "Payments time out", "--actions", "Rolling back", "--next-update", "20m",
                           "--public")
    assert update["public"] is True and update["next_update_at"]
    opsplane("incident", "note", "1", "Rollback finished")
    opsplane("incident", "action", "1", "Alert on pool saturation", "--owner", "ben", "--due", "2000-01-01")
    said = opsplane("incident", "resolve", "1", "--summary", "Rolled back").stdout
    assert "Resolved INC-1" in said and "Post-mortem due by" in said
    assert opsplane.json("incident", "list", "--open") == []
    shown = opsplane.json("incident", "show", "INC-1")
    assert [e["kind"] for e in shown["timeline"]] == [
        "incident.opened", "incident.acknowledged", "incident.updated", "incident.note",
        "incident.action_added", "incident.resolved"]
    table = opsplane("incident", "show", "1").stdout
    assert "Payments time out" in table and "Timeline" in table
    opsplane("incident", "postmortem", "1", "--out", str(tmp_path / "pm.md"))
    draft = (tmp_path / "pm.md").read_text()
    for heading in ("## Timeline", "## Root cause analysis", "## Impact assessment",
                    "## What went well", "## What went wrong", "## Action items"):
        assert heading in draft
    assert "| Alert on pool saturation | ben | 2000-01-01 | open |" in draft
    opsplane("incident", "actions", code=1)  # overdue
    opsplane("incident", "done", "1")
    opsplane("incident", "actions")
    report = opsplane.json("report", "incidents", "--since", "30d")
    [p1] = report["by_severity"]
    assert p1["count"] == 1 and p1["response_met"] == 1 and p1["mttr"] is not None
    assert "By severity" in opsplane("report", "incidents").stdout
    [event] = opsplane.json("events", "--kind", "incident.acknowledged")
    assert event["actor"] == "cli:ana" and event["outcome"] == "success"


def test_mistakes_are_usage_errors_with_a_way_forward(opsplane: Opsplane) -> None:
    wrong = opsplane("incident", "open", "--service", "order", "--severity", "P1", "--title", "x", code=3)
    assert "did you mean orders?" in wrong.stderr
    assert "P0, P1" in opsplane("incident", "open", "--service", "orders", "--severity", "P7",
                                "--title", "x", code=3).stderr
    assert "no incident INC-9" in opsplane("incident", "ack", "9", code=3).stderr
    opsplane("incident", "open", "--service", "orders", "--severity", "P2", "--title", "Slow search")
    assert "investigating" in opsplane("incident", "update", "1", "--status", "fixed", "--summary", "x",
                                       code=3).stderr
    assert "30m" in opsplane("incident", "update", "1", "--status", "monitoring", "--summary", "x",
                             "--next-update", "soon", code=3).stderr
    opsplane("incident", "resolve", "1")
    assert "resolved" in opsplane("incident", "ack", "1", code=3).stderr
