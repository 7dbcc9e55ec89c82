"""`opsplane demo`: it comes up healthy, `--stop` ends it, and nothing it started survives."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_demo_reaches_health_and_stop_leaves_no_process(tmp_path: Path) -> None:
    base = tmp_path / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "opsplane", "demo", "--dir", str(base), "--port", "0",
         "--no-outage"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        assert demo.stdout is not None
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            seen.append(line)
            if line.startswith("gateway OK"):
                break
        else:
            raise AssertionError("gateway never became OK:\n" + "".join(seen))
        pids = json.loads((base / "pids.json").read_text())
        assert {"demo", "catalog", "gateway"} <= set(pids)
        assert "admin token (shown once): ops_" in "".join(seen)
        stop = subprocess.run([sys.executable, "-m", "opsplane", "demo", "--stop", "--dir", str(base)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert demo.wait(30) == 0
        rest = demo.stdout.read()
        assert "stopped everything it started" in rest and "Traceback" not in rest
        assert all(gone(pid) for pid in pids.values()), pids
        assert not (base / "pids.json").exists()
    finally:
        demo.kill()
