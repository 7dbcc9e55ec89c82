"""`opsplane serve` as a real process: a target dies, the state change is an event in the API;
SIGTERM stops it cleanly; a restart neither loses nor repeats a state."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsplane.drivers.sandbox.ports import free_port
from tests.support.polling import wait_for
from tests.support.serve import Serve


def start_target(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "opsplane.demo.target", "--name", "catalog",
                                "--port", str(port)])
    wait_for(lambda: _connects(port), "the target to listen")
    return process


def _connects(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[Serve, int]]:
    target_port = free_port()
    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text(
        "platform: {name: shop}\n"
        "defaults: {interval: 500ms, timeout: 1s}\n"
        "services:\n"
        f"  catalog: {{port: {target_port}, checks: [{{type: http, path: /health}}]}}\n"
        f"  gateway: {{port: {target_port}, depends_on: [catalog], checks: [{{type: tcp}}]}}\n")
    server = Serve(tmp_path, inventory, free_port())
    yield server, target_port
    server.kill()


def events(server: Serve, token: str, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/api/v1/events", params=params, timeout=5,
                         headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def probes_run(server: Serve) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("opsplane_probes_total{"))


def test_target_killed_becomes_an_event_and_sigterm_is_clean(serve) -> None:
    server, target_port = serve
    token = json.loads(server.cli("token", "create", "--role", "viewer", "--json"))["token"]
    target = start_target(target_port)
    try:
        server.start()
        changes = lambda: events(server, token, kind="check.state_changed", service="catalog")  # noqa: E731
        [first] = wait_for(changes, "catalog's first state")
        assert first["details"]["to"] == "OK" and first["details"]["from"] is None
        assert first["target"] == "catalog/http" and first["actor"] == "system:control-plane"
        target.terminate()
        target.wait()
        down = wait_for(lambda: [e for e in changes() if e["outcome"] == "CRITICAL"], "CRITICAL")
        assert down[0]["details"]["from"] == "OK"
        url = f"http://127.0.0.1:{target_port}/health"
        assert down[0]["details"]["reason"] == f"refuses connections — {url}"
        health = httpx.get(f"{server.url}/api/v1/health", timeout=5,
                           headers={"Authorization": f"Bearer {token}"}).json()
        gateway = next(s for s in health["services"] if s["name"] == "gateway")
        assert gateway["reason"] == (f"tcp: refuses connections — 127.0.0.1:{target_port}; "
                                     f"depends on catalog, which refuses connections — {url}")
        metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
        assert 'opsplane_check_status{check="http",component="catalog"} 3.0' in metrics
        assert 'opsplane_probes_total{state="CRITICAL",type="http"}' in metrics
    finally:
        target.kill()
        target.wait()
    code, output = server.terminate()
    assert code == 0, output
    assert "Traceback" not in output
    # the stop was recorded, through the CLI this time (serve is gone)
    recorded = json.loads(server.cli("events", "--kind", "control_plane.*", "--json"))
    assert [e["kind"] for e in recorded] == ["control_plane.stopped", "control_plane.started"]


def test_restart_neither_repeats_nor_loses_a_state(serve) -> None:
    server, target_port = serve  # the target is never started: catalog is down throughout
    token = json.loads(server.cli("token", "create", "--role", "viewer", "--json"))["token"]
    server.start()
    changes = lambda: events(server, token, kind="check.state_changed")  # noqa: E731
    wait_for(lambda: len(changes()) == 2, "both checks' first state")
    assert server.terminate()[0] == 0
    server.start()
    # let three rounds of both checks run after the restart: still CRITICAL, so no new event
    wait_for(lambda: probes_run(server) >= 6, "three rounds of probes")
    assert len(changes()) == 2
    target = start_target(target_port)
    try:
        def ok_events() -> list[dict[str, Any]]:
            return [e for e in changes() if e["outcome"] == "OK"]

        recovered = wait_for(lambda: len(ok_events()) == 2 and ok_events(), "both to recover")
        assert {e["target"] for e in recovered} == {"catalog/http", "gateway/tcp"}
        assert all(e["details"]["from"] == "CRITICAL" for e in recovered)
    finally:
        target.kill()
        target.wait()
