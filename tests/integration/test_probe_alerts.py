"""Probe alerts: with nothing scraped, `serve` loads alerting only when a check turns CRITICAL,
and a check that keeps failing fires the rule pack's CheckFailing through the same pipeline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from opsplane.drivers.sandbox.ports import free_port
from tests.support.polling import wait_for
from tests.support.serve import Serve


def alerts(serve: Serve) -> list[dict[str, object]]:
    shown = subprocess.run([sys.executable, "-m", "opsplane", "-c", str(serve.inventory), "alerts", "--json"],
                           cwd=serve.workdir, env=serve.env, capture_output=True, text=True)
    return json.loads(shown.stdout) if shown.stdout.strip() else []


def test_a_check_failing_in_a_row_fires_check_failing(tmp_path: Path) -> None:
    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text(
        "platform: {name: shop}\n"
        "defaults: {interval: 300ms, timeout: 1s}\n"
        f"services:\n  orders: {{port: {free_port()}, checks: [{{type: tcp}}]}}\n"
        "alerting:\n"
        "  evaluation_interval: 500ms\n"
        "  builtin_rules: {thresholds: {check_failures: 2}}\n")
    serve = Serve(tmp_path, inventory)
    serve.start()
    try:
        def firing() -> list[dict[str, object]]:
            return [a for a in alerts(serve) if a["name"] == "CheckFailing" and a["state"] == "firing"]

        [alert] = wait_for(firing, "CheckFailing to fire", timeout=30)
        labels = alert["labels"]
        assert isinstance(labels, dict)
        assert (labels["service"], labels["check"], labels["severity"]) == ("orders", "tcp", "P1")
        assert int(float(str(alert["value"]))) >= 2
    finally:
        output = serve.stop()
    assert "Traceback" not in output, output
