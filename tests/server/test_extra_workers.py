"""A domain worker from outside opsplane, plugged into a real `opsplane serve` through the seam
(`OPSPLANE_EXTRA_WORKERS`): started after the domains' workers, woken by an operator, stopped
with serve, and reported on /health and /metrics all along."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.drivers.sandbox.ports import free_port
from opsplane.store import Store
from tests.support.polling import wait_for
from tests.support.serve import Serve

ROOT = Path(__file__).resolve().parents[2]


def _workers(serve: Serve) -> dict[str, dict[str, object]]:
    return {w["name"]: w for w in httpx.get(f"{serve.url}/health", timeout=5).json()["workers"]}


def test_a_worker_registered_through_the_seam_runs_with_serve(tmp_path: Path) -> None:
    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text("platform: {name: shop}\n"
                         f"services:\n  orders: {{port: {free_port()}, checks: [{{type: tcp}}]}}\n")
    serve = Serve(tmp_path, inventory)
    serve.env.update({"OPSPLANE_EXTRA_WORKERS": "tests.support.workers:build", "PYTHONPATH": str(ROOT)})
    store = Store.open(serve.env["OPSPLANE_DATABASE_URL"])
    with store.session() as session:
        operator = tokens.create(session, name="ops", role=Role.OPERATOR, actor="test")
    store.close()
    serve.start()
    try:
        workers = _workers(serve)
        assert list(workers) == ["health", "metrics", "alerts", "fake"]  # after the domains'
        assert workers["fake"]["state"] == "running" and "last_run" not in workers["fake"]

        woken = httpx.post(f"{serve.url}/api/v1/workers/fake/wake", timeout=5,
                           headers={"Authorization": f"Bearer {operator}"})
        assert woken.status_code == 202, woken.text
        fake = wait_for(lambda: (found := _workers(serve)["fake"]).get("last_run") and found,
                        "the fake worker's round")
        assert (fake["state"], fake["errors"], fake["lag_seconds"]) == ("running", 0, 0.0)
        metrics = httpx.get(f"{serve.url}/metrics", timeout=5).text
        assert re.search(r'^opsplane_worker_up\{worker="fake"\} 1\.0$', metrics, re.MULTILINE)
        assert re.search(r'^opsplane_worker_last_run_timestamp_seconds\{worker="fake"\} \d', metrics,
                         re.MULTILINE)
        [event] = serve.read("events", "--kind", "worker.woken")
        assert (event["target"], event["actor"]) == ("fake", "token:ops"), event
    finally:
        code, output = serve.terminate()
    assert code == 0, output
    said = [line for line in output.splitlines() if line.startswith("fake worker")]
    assert said == ["fake worker started", "fake worker woken (1)", "fake worker stopped"], output


def test_an_extra_worker_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text("platform: {name: shop}\n")
    env = {**Serve(tmp_path, inventory).env, "OPSPLANE_EXTRA_WORKERS": "backup.worker:build"}
    command = [sys.executable, "-m", "opsplane", "-c", str(inventory), "serve", "--port", str(free_port())]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 3, run.stderr
    assert "OPSPLANE_EXTRA_WORKERS: no worker factory 'backup.worker:build'" in run.stderr
    assert "Traceback" not in run.stderr
