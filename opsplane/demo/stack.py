"""The demo platform: private PostgreSQL and Redis when installed, two stand-in services,
and the inventory that describes them. Every process it starts is recorded in pids.json so
that `opsplane demo --stop` can end a demo whose terminal is gone."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from opsplane.drivers.sandbox import SandboxError
from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.errors import UsageError

PIDS_FILE = "pids.json"


@dataclass
class StandIn:
    """A stand-in service process (opsplane.demo.target) on a fixed port."""

    name: str
    port: int
    args: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        argv = [sys.executable, "-m", "opsplane.demo.target", "--name", self.name,
                "--port", str(self.port), *self.args]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - argv list, no shell
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        _wait_listening(self.port, self.process)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@dataclass
class DemoStack:
    base: Path
    postgres: TemporaryPostgres | None = None
    redis: TemporaryRedis | None = None
    services: dict[str, StandIn] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def start(self) -> None:
        """Start everything; what cannot start (no PostgreSQL installed) is left out with a note."""
        ensure_not_running(self.base)
        if self.base.exists():
            shutil.rmtree(self.base)
        self.base.mkdir(parents=True)
        self._write_pids()
        try:
            self.postgres = TemporaryPostgres(self.base / "postgres").start()
        except SandboxError as exc:
            self.notes.append(f"PostgreSQL left out: {exc}")
        try:
            self.redis = TemporaryRedis(self.base / "redis").start()
        except SandboxError as exc:
            self.notes.append(f"Redis left out: {exc}")
        catalog_port, gateway_port = free_port(), free_port()
        catalog_args: list[str] = []
        if self.postgres:
            catalog_args += ["--postgres", self.postgres.dsn]
        if self.redis:
            catalog_args += ["--redis", f"{self.redis.host}:{self.redis.port}"]
        self.services = {
            "catalog": StandIn("catalog", catalog_port, catalog_args, self.base / "catalog.log"),
            "gateway": StandIn("gateway", gateway_port,
                               ["--upstream", f"http://127.0.0.1:{catalog_port}/health"],
                               self.base / "gateway.log"),
        }
        for service in self.services.values():
            service.start()
            self._write_pids()
        self._write_pids()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()
        (self.base / PIDS_FILE).unlink(missing_ok=True)

    def inventory_yaml(self, api_port: int) -> str:
        """The inventory of this demo platform, as a person would write it."""
        catalog, gateway = self.services["catalog"], self.services["gateway"]
        catalog_deps = [n for n, up in (("postgres-main", self.postgres), ("redis", self.redis)) if up]
        lines = [
            "# The demo platform, written by `opsplane demo`.",
            "platform: {name: demo-shop, default_environment: development}",
            "environments:",
            "  development: {host: 127.0.0.1}",
            "defaults: {interval: 5s, timeout: 2s}",
            f"server: {{listen_host: 127.0.0.1, listen_port: {api_port}}}",
            "services:",
            "  gateway:",
            "    kind: gateway",
            f"    port: {gateway.port}",
            "    criticality: critical",
            "    team: platform",
            "    depends_on: [catalog]",
            "    runbook: runbooks/service-down.md",
            "    checks:",
            "      - {type: http, path: /health, latency_warning: 500ms, "
            "json: {path: status, value: ok}}",
            "  catalog:",
            "    kind: api",
            f"    port: {catalog.port}",
            "    criticality: high",
            "    team: catalog",
            f"    depends_on: [{', '.join(catalog_deps)}]",
            "    runbook: runbooks/service-down.md",
            "    checks:",
            "      - {type: http, path: /health, body_contains: '\"status\": \"ok\"'}",
            "      - {type: tcp}",
        ]
        if self.postgres:
            lines += [
                "databases:",
                "  postgres-main:",
                f"    port: {self.postgres.port}",
                f"    user: {self.postgres.user}",
                "    criticality: critical",
                "    team: dba",
                "    runbook: disaster-recovery.md#scenario-1-database-container-failure",
                "    checks: [{type: postgres}]",
            ]
        if self.redis:
            lines += [
                "caches:",
                "  redis:",
                f"    port: {self.redis.port}",
                "    criticality: critical",
                "    team: platform",
                "    checks: [{type: redis}]",
            ]
        lines += [
            "hosts:",
            "  localhost:",
            "    criticality: high",
            "    team: sre",
            "    checks: [{type: host, interval: 15s}]",
        ]
        return "\n".join(lines) + "\n"

    def pids(self) -> dict[str, int]:
        found = {"demo": os.getpid()}
        if self.postgres and self.postgres.pid:
            found["postgres"] = self.postgres.pid
        if self.redis and self.redis.pid:
            found["redis"] = self.redis.pid
        for name, service in self.services.items():
            if service.process is not None:
                found[name] = service.process.pid
        return found

    def _write_pids(self) -> None:
        (self.base / PIDS_FILE).write_text(json.dumps(self.pids()))


def ensure_not_running(base: Path) -> None:
    demo = _recorded(base).get("demo")
    if demo and psutil.pid_exists(demo) and demo != os.getpid():
        raise UsageError(f"a demo is already running (pid {demo}); stop it with `opsplane demo --stop`")


def stop_recorded(base: Path, timeout: float = 20.0) -> list[str]:
    """Stop a running demo from its pids file: the demo process first (it cleans up after
    itself), then whatever it left. Returns what was stopped."""
    pids = _recorded(base)
    stopped: list[str] = []
    order = ["demo"] + [name for name in pids if name != "demo"]
    for name in order:
        pid = pids.get(name)
        if not pid or not psutil.pid_exists(pid) or pid == os.getpid():
            continue
        try:
            process = psutil.Process(pid)
            # PostgreSQL's fast shutdown is SIGINT; everything else takes SIGTERM.
            process.send_signal(signal.SIGINT if name == "postgres" else signal.SIGTERM)
            process.wait(timeout)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            process.kill()
        stopped.append(f"{name} (pid {pid})")
    (base / PIDS_FILE).unlink(missing_ok=True)
    return stopped


def _recorded(base: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads((base / PIDS_FILE).read_text()).items()}
    except (OSError, ValueError):
        return {}


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SandboxError(f"demo service on port {port} exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SandboxError(f"demo service on port {port} did not start listening")
