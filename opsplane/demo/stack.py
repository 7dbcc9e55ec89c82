"""The demo platform: the reference shop (gateway, catalog, orders, payments) and a traffic
generator run by the process runtime, on a private PostgreSQL and Redis when they are
installed (SQLite and no cache otherwise), and the inventory that describes it all.

Every process the demo starts itself is recorded in pids.json, and the runtime keeps its own
state, so `opsplane demo --stop` can end a demo whose terminal is gone.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from opsplane.drivers.sandbox import SandboxError
from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.errors import UsageError

PIDS_FILE = "pids.json"
INVENTORY_FILE = "opsplane.yaml"
SHOP_SERVICES = ("gateway", "catalog", "orders", "payments")
TRAFFIC_RPS = 8.0
RUNBOOK = "https://runbooks.example.com/shop"


@dataclass
class DemoStack:
    """What `opsplane demo` runs, under `base` (which it empties first)."""

    base: Path
    postgres: TemporaryPostgres | None = None
    redis: TemporaryRedis | None = None
    ports: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runtime: Any = None

    @property
    def inventory_path(self) -> Path:
        return self.base / INVENTORY_FILE

    @property
    def store_url(self) -> str:
        return store_url(self.base)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def environ(self) -> dict[str, str]:
        return _environ(self.base)

    def start_servers(self) -> None:
        """Empty `base`, then start PostgreSQL and Redis; what is not installed is left out
        with a note."""
        ensure_not_running(self.base)
        if self.base.exists():
            shutil.rmtree(self.base)
        (self.base / "secrets").mkdir(parents=True, mode=0o700)
        self._write_pids()
        try:
            self.postgres = TemporaryPostgres(self.base / "postgres",
                                              password=secrets.token_urlsafe(18)).start()
            self.postgres.execute("CREATE DATABASE shop")
        except SandboxError as exc:
            self.notes.append(f"PostgreSQL left out, the shop uses SQLite: {exc}")
            self.postgres = None
        self._write_pids()
        try:
            self.redis = TemporaryRedis(self.base / "redis").start()
        except SandboxError as exc:
            self.notes.append(f"Redis left out, the shop runs without a cache: {exc}")
            self.redis = None
        self._write_pids()

    def write_inventory(self, api_port: int) -> Path:
        """Pick the shop's ports, write its secrets and the inventory; returns the path."""
        self.ports = {name: free_port() for name in SHOP_SERVICES}
        if self.postgres is not None:
            assert self.postgres.password is not None
            _write_secret(self.base / "secrets" / "postgres-password", self.postgres.password)
            _write_secret(self.base / "secrets" / "shop-database-url", self.postgres.url("shop"))
        _write_secret(self.base / "secrets" / "shop-admin-token", secrets.token_urlsafe(24))
        self.inventory_path.write_text(self.inventory_yaml(api_port))
        return self.inventory_path

    def start_shop(self, inventory: Any) -> None:
        """`opsplane up` for every service of the demo inventory."""
        from opsplane.drivers.runtime import open_runtime

        self.runtime = open_runtime(inventory, base_dir=self.base, environ=self.environ(),
                                    actor="system:demo")
        self.runtime.up(list(SHOP_SERVICES))
        # Shoppers arrive once the shop answers, not into its start-up.
        self.wait_for_gateway()
        self.runtime.up(["traffic"])

    def wait_for_gateway(self, timeout: float = 60.0) -> None:
        """Until the gateway's /health says ok (every service behind it is up)."""
        import httpx

        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"{self.gateway_url}/health", timeout=2, trust_env=False)
                if answer.status_code == 200 and answer.json().get("status") == "ok":
                    return
                last = f"HTTP {answer.status_code} {answer.text[:200]}"
            except (httpx.HTTPError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise SandboxError(f"the shop's gateway did not become healthy within {timeout:g} s: {last}")

    def admin_token(self) -> str:
        return (self.base / "secrets" / "shop-admin-token").read_text().strip()

    def stop(self) -> None:
        """Stop the shop, then Redis and PostgreSQL; safe to call on a half-started demo."""
        try:
            if self.runtime is not None:
                self.runtime.down()
            elif self.inventory_path.exists():
                _down_from_files(self.base)
        finally:
            if self.redis:
                self.redis.stop()
            if self.postgres:
                self.postgres.stop()
            (self.base / PIDS_FILE).unlink(missing_ok=True)

    # --- the inventory ---------------------------------------------------------------------

    def inventory_yaml(self, api_port: int) -> str:
        """The inventory of this demo platform, as a person would write it."""
        python = json.dumps(sys.executable)
        secrets_dir = self.base / "secrets"
        data_deps = [n for n, up in (("postgres-main", self.postgres), ("redis", self.redis)) if up]
        database_env = (
            [f"        SHOP_DATABASE_URL: file:{secrets_dir / 'shop-database-url'}"]
            if self.postgres else [])
        shared_env = [f"        SHOP_DATA_DIR: {json.dumps(str(self.base / 'shop'))}",
                      "        SHOP_VERSION: v1"]
        if self.redis:
            shared_env.append(f"        SHOP_REDIS_URL: {self.redis.url}")
        for name in ("catalog", "orders", "payments"):
            shared_env.append(f"        SHOP_{name.upper()}_URL: http://127.0.0.1:{self.ports[name]}")

        def service(name: str, kind: str, criticality: str, team: str, depends: list[str]) -> list[str]:
            return [
                f"  {name}:",
                f"    kind: {kind}",
                f"    port: {self.ports[name]}",
                f"    criticality: {criticality}",
                f"    team: {team}",
                f"    depends_on: [{', '.join(depends)}]",
                f"    runbook: {RUNBOOK}/{name}.md",
                "    metrics_path: /metrics",
                "    checks:",
                "      - {name: health, type: http, path: /health, latency_warning: 500ms,",
                "         json: {path: status, op: in, value: [ok, degraded]}}",
                "      - {name: errors, type: http, path: /health,",
                "         json: {path: errors.ratio_1m, op: '<', value: 0.05}}",
                "    run:",
                f"      argv: [{python}, -m, shop, {name}, --host, 127.0.0.1, --port, '{{port}}']",
                "      env:",
                *shared_env,
                "      secret_env:",
                f"        SHOP_ADMIN_TOKEN: file:{secrets_dir / 'shop-admin-token'}",
                *(database_env if name in ("catalog", "orders") else []),
                "      backoff: {initial: 1s, max: 20s}",
            ]

        lines = [
            "# The demo platform, written by `opsplane demo`.",
            "platform: {name: demo-shop, default_environment: development}",
            "environments:",
            "  development: {host: 127.0.0.1}",
            "defaults: {interval: 5s, timeout: 2s}",
            f"server: {{listen_host: 127.0.0.1, listen_port: {api_port}}}",
            "runtime: {driver: process, state_dir: run}",
            "services:",
            *service("gateway", "gateway", "critical", "platform", ["catalog", "orders"]),
            *service("catalog", "api", "high", "catalog", data_deps),
            *service("orders", "api", "critical", "checkout",
                     [*(["postgres-main"] if self.postgres else []), "payments"]),
            *service("payments", "api", "critical", "payments", []),
            "  traffic:",
            "    kind: worker",
            "    description: Shoppers browsing, searching and buying, so the charts move.",
            "    team: platform",
            "    depends_on: [gateway]",
            "    status_page: false",
            "    run:",
            f"      argv: [{python}, -m, shop.traffic, --base-url, {self.gateway_url},",
            f"             --rps, '{TRAFFIC_RPS:g}', --duration, '0']",
            "      restart: always",
        ]
        if self.postgres:
            lines += [
                "databases:",
                "  postgres-main:",
                f"    port: {self.postgres.port}",
                f"    user: {self.postgres.user}",
                "    database: shop",
                f"    password: file:{secrets_dir / 'postgres-password'}",
                "    criticality: critical",
                "    team: dba",
                f"    runbook: {RUNBOOK}/postgres-down.md",
                "    checks: [{type: postgres}]",
            ]
        if self.redis:
            lines += [
                "caches:",
                "  redis:",
                f"    port: {self.redis.port}",
                "    criticality: high",
                "    team: platform",
                f"    runbook: {RUNBOOK}/redis-down.md",
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

    # --- processes -------------------------------------------------------------------------

    def pids(self) -> dict[str, int]:
        found = {"demo": os.getpid()}
        if self.postgres and self.postgres.pid:
            found["postgres"] = self.postgres.pid
        if self.redis and self.redis.pid:
            found["redis"] = self.redis.pid
        return found

    def _write_pids(self) -> None:
        (self.base / PIDS_FILE).write_text(json.dumps(self.pids()))


def _write_secret(path: Path, value: str) -> None:
    path.touch(mode=0o600)
    path.write_text(value + "\n")


def ensure_not_running(base: Path) -> None:
    demo = _recorded(base).get("demo")
    if demo and psutil.pid_exists(demo) and demo != os.getpid():
        raise UsageError(f"a demo is already running (pid {demo}); stop it with `opsplane demo --stop`")


def stop_recorded(base: Path, timeout: float = 30.0) -> list[str]:
    """Stop a running demo from its files: the demo process first (it cleans up after
    itself), then the shop from the runtime's state, then whatever else it left."""
    pids = _recorded(base)
    stopped: list[str] = []
    demo = pids.get("demo")
    if demo and _signal(demo, signal.SIGTERM, timeout):
        stopped.append(f"demo (pid {demo})")
    if (base / INVENTORY_FILE).exists() and (base / "run").exists():
        _down_from_files(base)
        stopped.append("the shop (opsplane down)")
    for name, pid in pids.items():
        # PostgreSQL's fast shutdown is SIGINT; everything else takes SIGTERM.
        if name != "demo" and _signal(pid, signal.SIGINT if name == "postgres" else signal.SIGTERM,
                                      timeout):
            stopped.append(f"{name} (pid {pid})")
    (base / PIDS_FILE).unlink(missing_ok=True)
    return stopped


def _down_from_files(base: Path) -> None:
    """`opsplane down` for the demo inventory: stops what the runtime recorded, also when
    its supervisor is gone."""
    from opsplane.config.loader import load
    from opsplane.drivers.runtime import open_runtime

    open_runtime(load(base / INVENTORY_FILE), base_dir=base, environ=_environ(base),
                 actor="system:demo").down()


def store_url(base: Path) -> str:
    """The demo's own store, so that its events never mix with another platform's."""
    return f"sqlite:///{base / 'opsplane.db'}"


def _environ(base: Path) -> dict[str, str]:
    """The environment the runtime and the shop get: the demo's store."""
    return {**os.environ, "OPSPLANE_DATABASE_URL": store_url(base)}


def _signal(pid: int, signum: int, timeout: float) -> bool:
    """Send `signum` and wait for the process to end (SIGKILL after `timeout`); False when
    it was not running."""
    if pid == os.getpid():
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        process.send_signal(signum)
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.kill()
    except psutil.NoSuchProcess:
        return False
    return True


def _recorded(base: Path) -> dict[str, int]:
    try:
        return {k: int(v) for k, v in json.loads((base / PIDS_FILE).read_text()).items()}
    except (OSError, ValueError):
        return {}
