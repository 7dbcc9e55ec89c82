"""The instance list against the real process runtime: `opsplane up` starts a service, the
dashboard lists its instance as running, with pid and port; `opsplane down` ends it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from opsplane.config.loader import load
from opsplane.drivers.sandbox.ports import free_port
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.support.polling import wait_for
from tests.web.conftest import make_token

pytestmark = pytest.mark.slow


class Platform:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.inventory = root / "opsplane.yaml"
        self.inventory.write_text(
            "platform: {name: shop}\n"
            "services:\n"
            "  catalog:\n"
            f"    port: {self.port}\n"
            f"    run: {{argv: [{sys.executable}, -m, opsplane.demo.target, --name, catalog, "
            "--port, '{port}'], stop_timeout: 3s}\n"
            "    checks: [{type: http, path: /health}]\n"
            "  search: {port: 1, checks: [{type: tcp}]}\n")
        self.env = {**os.environ, "OPSPLANE_DATABASE_URL": f"sqlite:///{root}/opsplane.db"}

    def cli(self, *args: str) -> None:
        run = subprocess.run([sys.executable, "-m", "opsplane", "-c", str(self.inventory), *args],
                             cwd=self.root, env=self.env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    made = Platform(tmp_path)
    try:
        yield made
    finally:
        subprocess.run([sys.executable, "-m", "opsplane", "-c", str(made.inventory), "down"],
                       cwd=made.root, env=made.env, capture_output=True, timeout=60)


def test_instances_of_the_process_runtime_are_listed(platform: Platform, tmp_path: Path) -> None:
    store = Store.open(platform.env["OPSPLANE_DATABASE_URL"])
    try:
        plane = ControlPlane(load(platform.inventory), store)
        # started from elsewhere: the runtime's state is found from the inventory's directory
        client = TestClient(create_app(plane, inventory_dir=platform.root), follow_redirects=False)
        client.post("/ui/login", data={"token": make_token(plane)})
        before = client.get("/ui/instances").text.split('id="instances"')[1]
        assert "no supervisor is running" in before and "opsplane up" in before

        platform.cli("up", "--timeout", "20")
        table = client.get("/ui/instances").text.split('id="instances"')[1].split("</section>")[0]
        assert table.count("<tr>") == 2  # a header and catalog's one instance
        assert ">catalog</a>" in table and ">running</span>" in table and f"<td>{platform.port}</td>" in table
        # its memory, read from the process once it has loaded (a busy machine may show the
        # first few KiB of a process just started)
        wait_for(lambda: "MiB" in client.get("/ui/instances").text.split('id="instances"')[1],
                 "the instance's memory in MiB")
        page = client.get("/ui/services/catalog").text.split('id="service-instances"')[1]
        assert ">running</span>" in page
        search = client.get("/ui/services/search").text.split('id="service-instances"')[1]
        assert "No instances." in search.split("</section>")[0]
    finally:
        store.close()
