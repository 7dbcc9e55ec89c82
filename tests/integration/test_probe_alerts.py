"""Probe alerts: with nothing scraped, `serve` loads alerting only when a check turns CRITICAL,
and a check that keeps failing fires the rule pack's CheckFailing through the same pipeline."""

from __future__ import annotations

from pathlib import Path

from tests.support.polling import wait_for
from tests.support.serve import Serve, failing_check_inventory


def test_a_check_failing_in_a_row_fires_check_failing(tmp_path: Path) -> None:
    inventory = failing_check_inventory(tmp_path / "opsplane.yaml")
    serve = Serve(tmp_path, inventory)
    serve.start()
    try:
        def firing() -> list[dict[str, object]]:
            shown = serve.read("alerts")["alerts"]
            return [a for a in shown if a["name"] == "CheckFailing" and a["state"] == "firing"]

        [alert] = wait_for(firing, "CheckFailing to fire", timeout=30)
        labels = alert["labels"]
        assert isinstance(labels, dict)
        assert (labels["service"], labels["check"], labels["severity"]) == ("orders", "tcp", "P1")
        assert int(float(str(alert["value"]))) >= 2
    finally:
        output = serve.stop()
    assert "Traceback" not in output, output
