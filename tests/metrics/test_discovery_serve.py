"""`serve` scrapes each instance of a service behind a proxy, of both releases while a second
one runs beside the first, and an instance that stops leaves no series behind: what canary
analysis compares is in `/api/v1/query` per instance and per version.

The instances are real processes under the process runtime; the second release is started
by sending the supervisor an `up` for a group named `catalog@v2`, as a deploy does. Nothing
runs the proxy here: scraping does not go through it."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsplane.config.loader import load
from opsplane.drivers.runtime.process import ProcessRuntime
from opsplane.drivers.runtime.protocol import call
from opsplane.drivers.sandbox.ports import free_port
from opsplane.events.service import get_all
from opsplane.store import Store
from tests.support.polling import wait_for
from tests.support.serve import Serve, serving

APP = Path(__file__).with_name("instance_app.py")


def inventory(catalog_port: int, proxy_port: int) -> str:
    run = {"argv": [sys.executable, str(APP), "{port}", "v1"], "instances": 2, "stop_timeout": "3s"}
    return (
        "platform: {name: shop}\n"
        "defaults: {interval: 300ms, timeout: 1s}\n"
        f"proxies: {{edge: {{port: {proxy_port}, engine: nginx}}}}\n"
        "services:\n"
        f"  catalog: {{port: {catalog_port}, metrics_path: /metrics, proxy: edge, run: {json.dumps(run)}}}\n"
        "alerting: {builtin_rules: {enabled: false}}\n")


class Api:
    """PromQL over serve's HTTP API, as a viewer."""

    def __init__(self, serve: Serve) -> None:
        created = serve.cli("token", "create", "--name", "canary", "--role", "viewer", "--json")
        token = json.loads(created)["token"]
        self.client = httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {token}"},
                                   timeout=10, trust_env=False)

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = self.client.get("/api/v1/query", params={"query": expr})
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()["data"]["result"]
        return result

    def up(self) -> dict[str, str]:
        """`up` of each instance of catalog: instance label -> value."""
        found = self.query('up{service="catalog"}')
        return {series["metric"]["instance"]: series["value"][1] for series in found}


def running_ports(runtime: ProcessRuntime, service: str, count: int) -> list[int]:
    """The ports of the `count` instances of group `service`, by instance number, once they
    all run."""

    def ports() -> list[int]:
        found = sorted((s for s in runtime.status() if s.service == service), key=lambda s: s.instance)
        running = [int(s.port) for s in found if s.state == "running" and s.port is not None]
        return running if len(running) == count == len(found) else []

    result: list[int] = wait_for(ports, f"{count} running instance(s) of {service}")
    return result


def start_release(runtime: ProcessRuntime, version: str, instances: int) -> str:
    """Run `instances` of catalog's `version` beside its own group, as group catalog@VERSION."""
    base = runtime.spec("catalog")
    spec = dataclasses.replace(base, name=f"catalog@{version}", port=None, instances=instances,
                               argv=(*base.argv[:-1], version))
    call(runtime.paths, {"op": "up", "services": [spec.as_dict()], "actor": "cli:tester"}, timeout=30)
    return spec.name


def scrape_events(serve: Serve) -> list[tuple[str | None, str | None, str | None]]:
    store = Store.open(serve.env["OPSPLANE_DATABASE_URL"])
    try:
        with store.session() as session:
            return sorted((e.target, e.service, e.outcome) for e in get_all(session, kind="metrics.scrape"))
    finally:
        store.close()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[Serve, ProcessRuntime]]:
    with serving(tmp_path, inventory(free_port(), free_port()), free_port()) as serve:
        runtime = ProcessRuntime(load(serve.inventory), base_dir=tmp_path, environ=serve.env,
                                 actor="cli:tester")
        try:
            yield serve, runtime
        finally:
            runtime.down()


def test_serve_scrapes_every_instance_of_both_releases_and_forgets_one_that_stops(
        platform: tuple[Serve, ProcessRuntime]) -> None:
    serve, runtime = platform
    serve.start()
    api = Api(serve)
    runtime.up()
    v1 = running_ports(runtime, "catalog", 2)
    v2 = running_ports(runtime, start_release(runtime, "v2", 1), 1)
    assert runtime.inventory.component("catalog").port not in v1  # the proxy listens there, not an instance

    every = {f"127.0.0.1:{port}": "1" for port in [*v1, *v2]}
    wait_for(lambda: api.up() == every, "up of each of the three instances")
    by_version = {found["metric"]["version"]: found["value"][1]
                  for found in api.query('count by (version) (http_requests_total{service="catalog"})')}
    assert by_version == {"v1": "2", "v2": "1"}
    [canary] = api.query('http_requests_total{version="v2"}')
    assert (canary["metric"]["service"], canary["metric"]["job"]) == ("catalog", "catalog")
    assert canary["metric"]["instance"] == f"127.0.0.1:{v2[0]}"
    wait_for(lambda: scrape_events(serve) == [("catalog.0", "catalog", "ok"), ("catalog.1", "catalog", "ok"),
                                              ("catalog@v2.0", "catalog", "ok")],
             "a scrape event for each instance, named after it")

    # Stopping an instance: its series are marked stale at once, not left for the five minutes
    # of the query lookback.
    runtime.scale("catalog", 1)
    left = {f"127.0.0.1:{v1[0]}": "1", f"127.0.0.1:{v2[0]}": "1"}
    wait_for(lambda: api.up() == left, "catalog.1's up gone", timeout=10)
    assert api.query(f'http_requests_total{{instance="127.0.0.1:{v1[1]}"}}') == []

    # The release's group brought down: every one of its series goes the same way.
    call(runtime.paths, {"op": "down", "services": ["catalog@v2"], "actor": "cli:tester"}, timeout=30)
    wait_for(lambda: api.up() == {f"127.0.0.1:{v1[0]}": "1"}, "catalog@v2.0's up gone", timeout=10)
    assert api.query('http_requests_total{version="v2"}') == []
    api.client.close()
