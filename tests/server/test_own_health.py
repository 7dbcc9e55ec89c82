"""`GET /health` of the control plane: 200 while its loops run."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from opsplane.config.loader import loads
from opsplane.drivers.sandbox.ports import free_port
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store


def test_health_stays_ok_after_alerting_starts_for_a_failing_check(tmp_path: Path) -> None:
    # Nothing scraped: alerting starts with the first CRITICAL result, and the loop that
    # recorded "nothing to evaluate" until then ends, as it should; /health must not take
    # that for a stopped loop.
    text = ("platform: {name: shop}\ndefaults: {interval: 200ms, timeout: 200ms}\n"
            "alerting: {evaluation_interval: 300ms}\n"
            f"services:\n  orders: {{port: {free_port()}, checks: [{{type: tcp}}]}}\n")
    plane = ControlPlane(loads(text), Store.open(f"sqlite:///{tmp_path}/o.db"), flush_interval=0.05)
    with TestClient(create_app(plane)) as client:
        first = client.get("/health")
        deadline = time.monotonic() + 3
        while plane.alerting is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.8)  # past the end of the loop that waited for alerting
        later = client.get("/health")
    assert plane.alerting is not None
    assert (first.status_code, later.status_code) == (200, 200), later.json()
