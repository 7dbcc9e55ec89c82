"""Shop services as real processes (`python -m shop SERVICE`) for the tests, with helpers to
read their metrics and set their faults."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from opsplane.drivers.sandbox.ports import free_port

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "shop-admin-test-token"
START_TIMEOUT = 30.0


@dataclass
class ShopProcess:
    """One service process on a loopback port; its output goes to `log_path`."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def spawn(name: str, port: int, env: Mapping[str, str], log_dir: Path) -> ShopProcess:
    """Start `python -m shop NAME` with exactly the SHOP_* settings in `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    log_path = log_dir / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-m", "shop", name, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env={**base, "SHOP_LOG_LEVEL": "WARNING", **env}, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT,
        )
    return ShopProcess(name, port, process, log_path)


def wait_ready(services: Iterable[ShopProcess], timeout: float = START_TIMEOUT) -> None:
    """Return once every service answers /version; fail with its log if one exits or hangs."""
    deadline = time.monotonic() + timeout
    for service in services:
        while True:
            if service.process.poll() is not None:
                raise AssertionError(f"{service.name} exited with {service.process.returncode}:\n"
                                     f"{service.log_tail()}")
            try:
                if httpx.get(service.url + "/version", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{service.name} not ready after {timeout:g} s:\n{service.log_tail()}")
            time.sleep(0.05)


@dataclass
class ShopStack:
    """Some shop services started together; `env` is what they were started with."""

    services: dict[str, ShopProcess]
    env: dict[str, str] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return self.services[name].url

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def clear_faults(self) -> None:
        for service in self.services.values():
            if service.process.poll() is None and self.env.get("SHOP_ADMIN_TOKEN"):
                answer = httpx.delete(service.url + "/admin/faults", headers=admin_headers(), timeout=5)
                assert answer.status_code == 200, answer.text


def start_stack(names: Iterable[str], env: Mapping[str, str], log_dir: Path) -> ShopStack:
    """Start services with downstream URLs pointing at each other; wait until all answer."""
    ports = {name: free_port() for name in ("gateway", "catalog", "orders", "payments")}
    full_env = {f"SHOP_{name.upper()}_URL": f"http://127.0.0.1:{port}" for name, port in ports.items()
                if name != "gateway"}
    full_env.update(env)
    stack = ShopStack({name: spawn(name, ports[name], full_env, log_dir) for name in names}, full_env)
    try:
        wait_ready(stack.services.values())
    except BaseException:
        stack.stop()
        raise
    return stack


def admin_headers(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def put_faults(url: str, plan: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.put(url + "/admin/faults", json=plan, headers=admin_headers(), timeout=5)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of `url`/metrics, keyed by name and labels."""
    answer = httpx.get(url + "/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0.0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def names(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> set[str]:
    return {name for name, _ in samples}


