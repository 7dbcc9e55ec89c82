"""`opsplane serve` as a subprocess for tests that need the real process (browser, signals)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from opsplane.drivers.sandbox.ports import free_port
from opsplane.store import Store
from tests.support.polling import wait_for


def failing_check_inventory(path: Path) -> Path:
    """An inventory whose one service, orders, has a TCP check on a port where nothing
    listens, checked every 300 ms: CheckFailing (P1) fires after two failures."""
    path.write_text(
        "platform: {name: shop}\n"
        "defaults: {interval: 300ms, timeout: 1s}\n"
        f"services:\n  orders: {{port: {free_port()}, checks: [{{type: tcp}}]}}\n"
        "alerting:\n"
        "  evaluation_interval: 500ms\n"
        "  builtin_rules: {thresholds: {check_failures: 2}}\n")
    return path


class Serve:
    """`opsplane serve` in a subprocess with its own SQLite store, or the store at
    `database_url` (a database of the tests' PostgreSQL cluster)."""

    def __init__(self, workdir: Path, inventory: Path, port: int | None = None, *,
                 database_url: str | None = None) -> None:
        self.workdir, self.inventory, self.port = workdir, inventory, port or free_port()
        self.env = {**os.environ,
                    "OPSPLANE_DATABASE_URL": database_url or f"sqlite:///{workdir}/opsplane.db"}
        # The store serve would make, so read commands run before it starts find one.
        Store.open(self.env["OPSPLANE_DATABASE_URL"]).close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A command on this store and inventory, whatever its exit code."""
        return subprocess.run([sys.executable, "-m", "opsplane", "-c", str(self.inventory), *args],
                              cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=60)

    def cli(self, *args: str) -> str:
        run = subprocess.run([sys.executable, "-m", "opsplane", "-c", str(self.inventory), *args],
                             cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout

    def read(self, *args: str) -> Any:
        """The `--json` answer of a read command, whatever its exit code says about what it
        found (`opsplane alerts` exits 2 while a P0 fires, 3 before the rules are first
        evaluated); [] when it printed nothing."""
        run = subprocess.run([sys.executable, "-m", "opsplane", "-c", str(self.inventory), *args, "--json"],
                             cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=60)
        assert run.returncode in (0, 1, 2, 3), run.stderr
        return json.loads(run.stdout) if run.stdout.strip() else []

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "opsplane", "-c", str(self.inventory), "serve", "--port", str(self.port)],
            cwd=self.workdir, env=self.env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for(self._healthy, "serve to answer /health")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def terminate(self) -> tuple[int, str]:
        """SIGTERM, then its exit status and output; SIGKILL (status -9) after 15 s."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        code, self.process = self.process.returncode, None
        return code, output

    def stop(self) -> str:
        """Stop it if it runs; its output."""
        return self.terminate()[1] if self.process is not None else ""

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def signed_in_client(url: str, token: str) -> Iterator[httpx.Client]:
    """An HTTP client holding the dashboard cookie that signing in with `token` gave it, as a
    browser would (redirects are not followed, so each answer can be looked at)."""
    with httpx.Client(base_url=url, timeout=10, follow_redirects=False, trust_env=False) as client:
        answer = client.post("/ui/login", data={"token": token, "next": "/ui/"})
        assert answer.status_code == 303, answer.text
        yield client


@contextlib.contextmanager
def serving(directory: Path, inventory: str, port: int) -> Iterator[Serve]:
    """A `Serve` of the inventory text `inventory` on `port` (not started yet), stopped on the
    way out, whose output must then hold no traceback."""
    path = directory / "opsplane.yaml"
    path.write_text(inventory)
    serve = Serve(directory, path, port=port)
    try:
        yield serve
    finally:
        output = serve.stop()
        assert "Traceback" not in output, output
