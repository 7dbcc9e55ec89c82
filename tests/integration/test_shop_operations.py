"""opsplane operating the reference shop end to end: the shop runs under the process runtime on
a private PostgreSQL and Redis (as `opsplane demo` sets it up), faults are injected through its
admin endpoint, and what a user relies on is checked where they would look: the shop's
metrics, `opsplane health` and the event log."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

import httpx
from prometheus_client.parser import text_string_to_metric_families

from opsplane.demo.stack import DemoStack
from opsplane.drivers.runtime.base import InstanceStatus
from opsplane.events.service import get_all
from opsplane.store import Store
from tests.integration.conftest import set_faults
from tests.support.polling import wait_for
from tests.support.serve import Serve


def opsplane(stack: DemoStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSPLANE_CONFIG": str(stack.inventory_path),
           "OPSPLANE_DATABASE_URL": stack.store_url}
    return subprocess.run([sys.executable, "-m", "opsplane", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def requests_by_status(port: int, route: str) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", trust_env=False).text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels["route"] == route:
                status = sample.labels["status"]
                counts[status] = counts.get(status, 0.0) + sample.value
    return counts


def gateway_health(stack: DemoStack) -> tuple[int, dict[str, object]]:
    shown = opsplane(stack, "health", "--service", "gateway", "--json")
    return shown.returncode, json.loads(shown.stdout)


def test_the_shop_is_healthy_under_the_runtime(shop: DemoStack) -> None:
    code, report = gateway_health(shop)
    gateway = report["services"][0]  # type: ignore[index]
    assert (code, gateway["name"], gateway["state"]) == (0, "gateway", "OK"), report


def test_injected_errors_show_in_the_metrics_and_in_opsplane_health(shop: DemoStack) -> None:
    port = shop.ports["gateway"]
    before = requests_by_status(port, "/api/products")
    set_faults(shop, "gateway", {"error_ratio": {"*": 0.1}})
    try:
        with httpx.Client(base_url=shop.gateway_url, trust_env=False) as client:
            answers = [client.get("/api/products", params={"page": 1 + i % 5}).status_code
                       for i in range(400)]
        after = requests_by_status(port, "/api/products")
        failed = after.get("500", 0) - before.get("500", 0)
        served = sum(after.values()) - sum(before.values())
        # every injected error is counted (the demo's shoppers add their own requests)
        assert failed >= answers.count(500) > 0
        assert served >= 400 and 0.06 <= failed / served <= 0.15, (failed, served)

        code, report = gateway_health(shop)
        checks = {c["name"]: c for c in report["services"][0]["checks"]}  # type: ignore[index]
        assert code == 2
        assert checks["errors"]["state"] == "CRITICAL"
        assert "errors.ratio_1m: expected < 0.05" in checks["errors"]["reason"]
        assert checks["health"]["state"] == "OK"  # the service is up; it is failing requests
    finally:
        set_faults(shop, "gateway", None)


def test_a_crashed_service_is_restarted_and_the_crash_recorded(shop: DemoStack) -> None:
    assert shop.runtime is not None
    catalog = next(i for i in shop.runtime.status() if i.service == "catalog")
    set_faults(shop, "catalog", {"crash": {"after_requests": 0, "exit_code": 3}})
    # The catalog exits at once; a request now is refused or is its last answer.
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{catalog.port}/products", trust_env=False)
    def replaced() -> InstanceStatus | None:
        now = next(i for i in shop.runtime.status() if i.service == "catalog")
        return now if now.pid != catalog.pid and now.state == "running" else None

    restarted = wait_for(replaced, "catalog restarted by the supervisor", timeout=30, interval=0.2)
    assert restarted.restarts == catalog.restarts + 1
    assert restarted.last_exit == "exit 3"
    shop.wait_for_gateway()

    store = Store.open(shop.store_url)

    def recorded() -> list[str]:
        with store.session() as session:
            kinds = [e.kind for e in get_all(session, service="catalog", kind="runtime.*")]
        return kinds if "runtime.restarted" in kinds else []

    try:
        kinds = wait_for(recorded, "the restart in the event log", timeout=10, interval=0.2)
    finally:
        store.close()
    assert "runtime.exited" in kinds and "runtime.restarted" in kinds


def test_operators_restart_and_scale_through_the_api_and_viewers_only_read(shop: DemoStack) -> None:
    serve = Serve(shop.base, shop.inventory_path)
    viewer = json.loads(serve.cli("token", "create", "--name", "dash", "--role", "viewer", "--json"))["token"]
    operator = json.loads(serve.cli("token", "create", "--name", "oncall", "--role", "operator",
                                    "--json"))["token"]
    serve.start()
    try:
        def call(method: str, path: str, token: str, **kwargs: object) -> httpx.Response:
            return httpx.request(method, serve.url + path, headers={"Authorization": f"Bearer {token}"},
                                 trust_env=False, timeout=60, **kwargs)  # type: ignore[arg-type]

        listed = call("GET", "/api/v1/instances", viewer).json()
        assert listed["running"] is True
        before = {i["service"]: i for i in listed["instances"]}
        assert {"gateway", "catalog", "orders", "payments", "traffic"} <= set(before)

        assert call("POST", "/api/v1/services/payments/restart", viewer).status_code == 403
        restarted = call("POST", "/api/v1/services/payments/restart", operator)
        assert restarted.status_code == 200, restarted.text
        [payments] = restarted.json()["instances"]
        assert payments["pid"] != before["payments"]["pid"] and payments["state"] == "running"

        scaled = call("POST", "/api/v1/services/catalog/scale", operator, json={"instances": 2})
        assert scaled.status_code == 200, scaled.text
        ports = {i["port"] for i in scaled.json()["instances"] if i["state"] == "running"}
        assert len(ports) == 2
        assert call("POST", "/api/v1/services/catalog/scale", operator,
                    json={"instances": 1}).status_code == 200
        assert call("POST", "/api/v1/services/postgres-main/restart", operator).status_code == 404

        recorded = json.loads(serve.cli("events", "--kind", "runtime.*", "--json"))
        actors = {(e["kind"], e["actor"]) for e in recorded if e["service"] in ("payments", "catalog")}
        assert ("runtime.restarted", "token:oncall") in actors
        assert ("runtime.scaled", "token:oncall") in actors
    finally:
        output = serve.stop()
        assert "Traceback" not in output, output
