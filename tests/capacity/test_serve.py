"""`serve` with a capacity section runs the capacity worker, which records the host's CPU and
memory, a filesystem and a directory into the store every interval; `opsplane report capacity`
reads them back."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from opsplane.drivers.sandbox.ports import free_port
from tests.shop.shopstack import REPO
from tests.support.polling import wait_for
from tests.support.serve import Serve


def test_serve_records_each_resource_every_interval(tmp_path: Path) -> None:
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "part.bin").write_bytes(b"\0" * 250_000)
    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text("platform: {name: shop}\n"
                         f"services:\n  orders: {{port: {free_port()}, checks: [{{type: tcp}}]}}\n"
                         "capacity:\n  interval: 1s\n  min_history: 2s\n"
                         f"  disks: ['{tmp_path}']\n  directories: {{spool: {{path: spool, size: 1MB}}}}\n")
    serve = Serve(tmp_path, inventory)
    serve.env["PYTHONPATH"] = str(REPO)
    serve.start()
    try:
        workers = {w["name"]: w for w in httpx.get(f"{serve.url}/health", timeout=5).json()["workers"]}
        assert workers["capacity"]["state"] == "running"

        def recorded() -> dict[str, dict[str, object]] | None:
            ran = serve.run("report", "capacity", "--json")
            found = {r["resource"]: r for r in json.loads(ran.stdout)["resources"]} if ran.stdout else {}
            return found if all(r["recordings"] >= 4 for r in found.values()) and len(found) == 4 else None

        resources = wait_for(recorded, "four recordings of each resource", timeout=30)
    finally:
        serve.terminate()
    assert set(resources) == {"cpu", "memory", f"disk:{tmp_path}", "dir:spool"}
    assert resources["dir:spool"]["current"] == 0.25  # 250 kB of 1 MB
    assert 0 <= resources["cpu"]["current"] <= 1 and 0 < resources["memory"]["current"] < 1  # type: ignore[operator]
    assert resources["dir:spool"]["fit"] == "linear" and resources["dir:spool"]["status"] == "ok"
