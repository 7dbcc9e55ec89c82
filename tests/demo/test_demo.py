"""`opsplane demo`: the shop comes up healthy under the runtime, shoppers buy, its PostgreSQL
(through pgBackRest, archiving WAL) and Redis are backed up into a local and an S3 repository,
`--stop` ends it, and nothing it started survives."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsplane.demo.stack import INVENTORY_FILE

SHOP = {"gateway", "catalog", "orders", "payments", "traffic", "edge"}  # edge: nginx in front


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def opsplane(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSPLANE_CONFIG": str(base / "opsplane.yaml"),
           "OPSPLANE_DATABASE_URL": f"sqlite:///{base / 'opsplane.db'}"}
    return subprocess.run([sys.executable, "-m", "opsplane", *args], cwd=base.parent, env=env,
                          capture_output=True, text=True, timeout=60)


def completed_orders(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:  # noqa: S310
        text = answer.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "orders_total" and sample.labels.get("status") == "completed":
                return sample.value
    raise AssertionError("orders_total{status=completed} is missing")


def descendants(pid: int) -> set[int]:
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory PostgreSQL's account can reach (pytest's own are private to root), so that its
    archive_command finds pgBackRest's configuration in the demo's directory."""
    path = Path(tempfile.mkdtemp(prefix="opsplane-demo-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def good_backups(base: Path) -> list[dict[str, Any]] | None:
    """`opsplane backup status --json` once every policy has a good copy in every repository
    within its RPO; None before."""
    status = opsplane(base, "backup", "status", "--json")
    if not status.stdout.strip():
        return None
    policies = json.loads(status.stdout)
    fresh = all(repo["newest"] and not repo["stale"]
                for policy in policies for repo in policy["repositories"])
    return policies if policies and fresh else None


def test_demo_runs_the_shop_until_stopped_and_leaves_no_process(tmp_path: Path, reachable_dir: Path) -> None:
    base = reachable_dir / "demo"
    demo = subprocess.Popen(
        [sys.executable, "-m", "opsplane", "demo", "--dir", str(base), "--port", "0", "--no-outage"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        assert demo.stdout is not None
        healthy: set[str] = set()
        while time.monotonic() < deadline and not {"gateway", "orders", "payments"} <= healthy:
            line = demo.stdout.readline()
            seen.append(line)
            if " OK: " in line:
                healthy.add(line.split(" ", 1)[0])
        assert {"gateway", "orders", "payments"} <= healthy, "".join(seen)
        text = "".join(seen)
        assert "admin token (shown once): ops_" in text and "/ui/" in text

        # The runtime runs every shop service and the shoppers.
        ps = opsplane(base, "ps", "--json")
        assert ps.returncode == 0, ps.stderr
        instances = json.loads(ps.stdout)
        running = {i["service"] for i in instances if i["state"] == "running"}
        assert running == SHOP, instances
        shop_pids = {i["pid"] for i in instances}
        # Shoppers are checking out: the orders service counts completed orders.
        orders_port = next(i["port"] for i in instances if i["service"] == "orders")
        deadline, completed = time.monotonic() + 60, 0.0
        while time.monotonic() < deadline and not completed:
            completed = completed_orders(orders_port)
            time.sleep(1)
        assert completed > 0

        # serve's backup worker backs PostgreSQL (pgBackRest) and Redis up at once, into the local
        # directory and the S3 store; 3-2-1 is met
        deadline, policies = time.monotonic() + 90, None
        while time.monotonic() < deadline and policies is None:
            policies = good_backups(base)
            time.sleep(2)
        assert policies is not None, opsplane(base, "backup", "status").stdout
        assert {(p["policy"], p["engine"]) for p in policies} == {("postgres-main", "pgbackrest"),
                                                                  ("redis", "redis-rdb")}
        for policy in policies:
            assert [repo["repository"] for repo in policy["repositories"]] == ["local", "offsite"]
            assert policy["rule_321"]["met"], policy
        listed = json.loads(opsplane(base, "backup", "list", "--json").stdout)
        good = {(b["policy"], tuple(c["repository"] for c in b["copies"])) for b in listed
                if b["state"] in ("complete", "verified")}
        assert {("postgres-main", ("local", "offsite")), ("redis", ("local", "offsite"))} <= good
        pids = json.loads((base / "pids.json").read_text())
        assert {"demo", "postgres", "redis"} <= set(pids)
        everything = {item["pid"] for item in pids.values() if isinstance(item, dict)} | shop_pids
        everything |= descendants(demo.pid)
        for pid in shop_pids:
            everything |= descendants(pid)

        stop = subprocess.run([sys.executable, "-m", "opsplane", "demo", "--stop", "--dir", str(base)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=90)
        assert stop.returncode == 0, stop.stderr
        assert demo.wait(60) == 0
        rest = demo.stdout.read()
        assert "stopped everything it started" in rest and "Traceback" not in rest
        assert [pid for pid in everything if not gone(pid)] == []
        assert not (base / "pids.json").exists()
    finally:
        demo.kill()


def test_a_taken_api_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "opsplane", "demo", "--dir", str(tmp_path / "demo"),
                               "--port", str(port)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
    assert done.returncode != 0
    assert f"the demo's API cannot listen on 127.0.0.1:{port}: the port is taken" in done.stdout + done.stderr
    assert "starting PostgreSQL" not in done.stdout and not (tmp_path / "demo" / INVENTORY_FILE).exists()
