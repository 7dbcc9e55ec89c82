"""A check that keeps failing under `serve` fires CheckFailing (P1), which opens an incident
whose timeline shows the check's state change and the alert, read back with the commands;
detection starts when the check failed."""

from __future__ import annotations

from pathlib import Path

from tests.support.polling import wait_for
from tests.support.serve import Serve, failing_check_inventory


def test_a_failing_check_opens_an_incident_with_its_timeline(tmp_path: Path) -> None:
    inventory = failing_check_inventory(tmp_path / "opsplane.yaml")
    serve = Serve(tmp_path, inventory)
    serve.start()
    try:
        [incident] = wait_for(lambda: serve.read("incident", "list"), "an incident to open", timeout=30)
        assert (incident["service"], incident["severity"]) == ("orders", "P1")
        assert incident["status"] == "triggered"
        assert incident["detected_at"] <= incident["started_at"]
        shown = serve.read("incident", "show", str(incident["id"]))
        assert [a["alertname"] for a in shown["alerts"]] == ["CheckFailing"]
        kinds = [e["kind"] for e in shown["timeline"]]
        first = kinds.index
        assert first("check.state_changed") < first("alert.firing") <= first("incident.opened")
        # detection starts at the check's failure, before the alert's `for` and the incident
        assert shown["detected_at"] == shown["timeline"][first("check.state_changed")]["at"]
    finally:
        output = serve.stop()
    assert "Traceback" not in output, output
