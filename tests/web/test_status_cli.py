"""`opsplane status maintenance` as a person runs it: a temporary inventory and SQLite store,
the real command in a subprocess, exit codes and the recorded events checked."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def run(tmp_path: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    env = {"OPSPLANE_DATABASE_URL": f"sqlite:///{tmp_path}/opsplane.db", "PATH": "/usr/bin:/bin",
           "USER": "ana", "COLUMNS": "200"}
    ran = subprocess.run([sys.executable, "-m", "opsplane", "-c", "opsplane.yaml", *args],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert ran.returncode == code, (ran.stdout, ran.stderr)
    assert "Traceback" not in ran.stderr
    return ran


def test_add_list_and_cancel_a_notice_and_refuse_bad_input(tmp_path: Path) -> None:
    (tmp_path / "opsplane.yaml").write_text(
        "platform: {name: shop}\nservices:\n  cart: {port: 8001}\n  orders: {port: 8002}\n")
    start = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    window = ["--start", start.isoformat(), "--end", (start + timedelta(hours=2)).isoformat()]
    added = json.loads(run(tmp_path, "status", "maintenance", "add", "--component", "cart",
                           "--component", "orders", *window, "--message", "Database upgrade.",
                           "--json").stdout)
    assert added["components"] == ["cart", "orders"] and added["state"] == "scheduled"
    listed = json.loads(run(tmp_path, "status", "maintenance", "list", "--json").stdout)
    assert [n["id"] for n in listed] == [added["id"]]

    typo = run(tmp_path, "status", "maintenance", "add", "--component", "crat", *window,
               "--message", "x", code=3)
    assert "did you mean cart?" in typo.stderr
    backwards = run(tmp_path, "status", "maintenance", "add", "--component", "cart",
                    "--start", window[3], "--end", window[1], "--message", "x", code=3)
    assert "before it starts" in backwards.stderr

    run(tmp_path, "status", "maintenance", "cancel", added["id"])
    assert json.loads(run(tmp_path, "status", "maintenance", "list", "--json").stdout) == []
    assert "no standing maintenance notice" in run(
        tmp_path, "status", "maintenance", "cancel", added["id"], code=3).stderr
    logged = json.loads(run(tmp_path, "events", "--kind", "maintenance.*", "--json").stdout)
    assert [(e["kind"], e["actor"]) for e in logged] == [
        ("maintenance.notice_cancelled", "cli:ana"), ("maintenance.notice_scheduled", "cli:ana")]
