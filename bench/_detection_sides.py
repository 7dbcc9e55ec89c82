"""The detection benchmark's parts: the webhook recorder, and the sides that watch the shop.

A side is what pages: `opsplane serve`, or a Prometheus with its own Alertmanager. Every
fault gets fresh sides (`Sides`), started together and stopped together, so no side carries
an alert group, a notification log or a resolved alert from one fault into the next: each
fault is a new outage to every side.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from _common import Child, Children, free_port, http_get, wait_for_http

ENV = "development"  # the demo's default environment: the `env` label opsplane adds


# --- the webhook recorder ------------------------------------------------------------------


@dataclass
class Arrival:
    """One POST to the recorder."""

    side: str
    monotonic: float
    wall: float
    alerts: list[tuple[str, str]]  # (alertname, status)


class Recorder:
    """A webhook receiver on loopback keeping every notification with its arrival time."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                now, wall = time.monotonic(), time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.end_headers()
                recorder.record(self.path.strip("/"), now, wall, body)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, side: str) -> str:
        return f"http://127.0.0.1:{self.port}/{side}"

    def record(self, side: str, now: float, wall: float, body: bytes) -> None:
        try:
            message = json.loads(body)
        except ValueError:
            message = {}
        alerts = [(str(a.get("labels", {}).get("alertname")), str(a.get("status")))
                  for a in message.get("alerts", [])]
        with self.lock:
            self.arrivals.append(Arrival(side, now, wall, alerts))

    def first(self, side: str, after: float, alertname: str) -> Arrival | None:
        """The first notification of `side` since `after` (monotonic) carrying `alertname`
        as firing."""
        with self.lock:
            return next((a for a in self.arrivals if a.side == side and a.monotonic >= after
                         and (alertname, "firing") in a.alerts), None)

    def between(self, side: str, start: float, end: float) -> list[Arrival]:
        with self.lock:
            return [a for a in self.arrivals if a.side == side and start <= a.monotonic < end]

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- Prometheus and Alertmanager ------------------------------------------------------------


@dataclass(frozen=True)
class PrometheusSetup:
    """One Prometheus side: its scrape and evaluation interval, and its name on the recorder."""

    name: str
    interval: float


def prometheus_yml(ports: dict[str, int], interval: float, alertmanager_port: int, rule_file: Path) -> str:
    """Scrape and evaluate every `interval`, scraping the shop's services with the `job`,
    `service` and `env` labels opsplane gives them."""
    every = f"{interval:g}s"
    config = {
        "global": {"scrape_interval": every, "evaluation_interval": every},
        "alerting": {"alertmanagers": [{"static_configs": [
            {"targets": [f"127.0.0.1:{alertmanager_port}"]}]}]},
        "rule_files": [str(rule_file)],
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"],
                                                    "labels": {"service": name, "env": ENV}}]}
            for name, port in ports.items()],
    }
    return json.dumps(config, indent=2) + "\n"


def rules_every(exported: dict[str, Any], interval: float) -> dict[str, Any]:
    """The exported rule file with its groups evaluated every `interval` (the export carries
    opsplane's evaluation interval)."""
    return {"groups": [{**group, "interval": f"{interval:g}s"} for group in exported["groups"]]}


def alertmanager_for(exported: dict[str, Any], webhook: str) -> dict[str, Any]:
    """The exported Alertmanager configuration (opsplane's routing tree, timers and
    inhibitions) with every webhook pointed at `webhook`."""
    receivers = [{**receiver, "webhook_configs": [{**config, "url": webhook}
                                                   for config in receiver.get("webhook_configs", [])]}
                 for receiver in exported["receivers"]]
    return {**exported, "receivers": receivers}


def start_prometheus(children: Children, tmp: Path, setup: PrometheusSetup, ports: dict[str, int],
                     rules: dict[str, Any], alertmanager: dict[str, Any]) -> tuple[str, list[Child]]:
    """A fresh Alertmanager and Prometheus (empty storage) for one side; Prometheus's URL."""
    home = tmp / setup.name
    home.mkdir(parents=True)
    am_port, prom_port = free_port(), free_port()
    (home / "alertmanager.yml").write_text(json.dumps(alertmanager, indent=2) + "\n")
    manager = children.start(Child(f"alertmanager ({setup.name})", [
        "prometheus-alertmanager", f"--config.file={home / 'alertmanager.yml'}",
        f"--storage.path={home / 'alertmanager'}", f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",  # one instance: no gossip port on every address
        "--log.level=warn"], log=home / "alertmanager.log"))
    (home / "rules.yml").write_text(json.dumps(rules, indent=2) + "\n")
    (home / "prometheus.yml").write_text(prometheus_yml(ports, setup.interval, am_port, home / "rules.yml"))
    prometheus = children.start(Child(f"prometheus ({setup.name})", [
        "prometheus", f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn"], log=home / "prometheus.log"))
    wait_for_http(f"http://127.0.0.1:{am_port}/-/ready", manager, timeout=30)
    wait_for_http(f"http://127.0.0.1:{prom_port}/-/ready", prometheus, timeout=60)
    return f"http://127.0.0.1:{prom_port}", [manager, prometheus]


def prometheus_fired(url: str, rule: str, since_wall: float) -> float | None:
    """Wall time of the first evaluation at or after `since_wall` that wrote
    ALERTS{alertstate="firing"} for `rule`: when Prometheus fired it."""
    window = max(60, int(time.time() - since_wall) + 60)
    query = f'ALERTS{{alertname="{rule}",alertstate="firing"}}[{window}s]'
    status, body = http_get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}")
    if status != 200:
        return None
    stamps = [float(t) for series in json.loads(body)["data"]["result"] for t, _ in series["values"]]
    return min((t for t in stamps if t >= since_wall), default=None)


def prometheus_sees(url: str, expr: str) -> bool:
    status, body = http_get(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    return status == 200 and bool(json.loads(body)["data"]["result"])


# --- opsplane ------------------------------------------------------------------------------


def start_serve(children: Children, tmp: Path, opsplane: list[str], inventory: Path,
                name: str) -> tuple[Child, Path]:
    """`opsplane serve` on `inventory` with a fresh store of its own; the child and the store."""
    database = tmp / f"{name}.db"
    port = free_port()
    env = {**os.environ, "OPSPLANE_DATABASE_URL": f"sqlite:///{database}"}
    serve = children.start(Child(name, [*opsplane, "-c", str(inventory), "serve", "--port", str(port),
                                        "--log-level", "warning"], log=tmp / f"{name}.log", env=env))
    wait_for_http(f"http://127.0.0.1:{port}/health", serve, timeout=60)
    return serve, database


def event_times(database: Path, kind: str, target: str, since_wall: float) -> list[float]:
    """Wall times of the events of `kind` about `target` at or after `since_wall`, oldest
    first, from an opsplane store."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as connection:
        rows = connection.execute("SELECT ts FROM events WHERE kind = ? AND target = ? ORDER BY id",
                                  (kind, target)).fetchall()
    stamps = sorted(datetime.fromisoformat(str(ts)).replace(tzinfo=UTC).timestamp() for (ts,) in rows)
    return [at for at in stamps if at >= since_wall]


# --- the sides of one fault ----------------------------------------------------------------


@dataclass
class Sides:
    """Fresh sides for one fault: `opsplane` and one Prometheus + Alertmanager per setup."""

    serve_database: Path
    prometheus_urls: dict[str, str]
    children: list[Child]

    def check_alive(self) -> None:
        for child in self.children:
            child.check_alive()

    def wait(self, until: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if until():
                return True
            time.sleep(0.05)
        return until()

    def stop(self) -> None:
        for child in reversed(self.children):
            child.terminate(10.0)


def start_sides(children: Children, tmp: Path, *, opsplane: list[str], inventory: Path,
                setups: list[PrometheusSetup], ports: dict[str, int], rules: dict[str, Any],
                alertmanager: dict[str, Any], recorder: Recorder) -> Sides:
    """Start every side afresh under `tmp` (a new directory per fault)."""
    tmp.mkdir(parents=True)
    started: list[Child] = []
    urls = {}
    for setup in setups:
        url, parts = start_prometheus(children, tmp, setup, ports, rules_every(rules, setup.interval),
                                      alertmanager_for(alertmanager, recorder.url(setup.name)))
        urls[setup.name] = url
        started += parts
    serve, database = start_serve(children, tmp, opsplane, inventory, "serve")
    return Sides(database, urls, [*started, serve])
