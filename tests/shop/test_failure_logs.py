"""Every request the shop answers with a 5xx leaves one ERROR line saying why, and
`opsplane logs --errors` counts them: the shop runs under the process runtime as the demo
runs it, payments fails 30 % of its charges by fault, and shoppers check out through the
gateway."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families

from opsplane.config.loader import load
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port
from shop.service import ServiceSpec, ShopRuntime, build_app
from shop.settings import load_settings
from tests.integration.conftest import set_faults
from tests.support.polling import wait_for

CHECKOUTS = 60


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    """The demo's shop (PostgreSQL, Redis, the four services) under the runtime, no shoppers."""
    # failures as the services see them: no proxy between them
    made = DemoStack(tmp_path_factory.mktemp("failing-shop") / "demo", traffic=False, proxy=False)
    try:
        made.start_servers()
        made.start_shop(load(made.write_inventory(free_port())))
        yield made
    finally:
        made.stop()


def opsplane(stack: DemoStack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSPLANE_CONFIG": str(stack.inventory_path),
           "OPSPLANE_DATABASE_URL": stack.store_url}
    return subprocess.run([sys.executable, "-m", "opsplane", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def failed_requests(stack: DemoStack, service: str) -> int:
    """The 5xx answers `service` counted in its own metrics (what its log must account for)."""
    text = httpx.get(f"http://127.0.0.1:{stack.ports[service]}/metrics", trust_env=False).text
    return int(sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples
                   if sample.name == "http_requests_total" and sample.labels["status"].startswith("5")))


def check_out(client: httpx.Client) -> int:
    cart = client.post("/api/carts").json()["id"]
    assert client.post(f"/api/carts/{cart}/items", json={"product_id": 1, "quantity": 1}).status_code == 201
    return client.post("/api/checkout", json={"cart_id": cart}).status_code


def error_report(stack: DemoStack) -> dict[str, dict[str, Any]]:
    shown = opsplane(stack, "logs", "--errors", "--since", "10m", "--top", "3", "--json")
    assert shown.returncode in (0, 1), shown.stderr
    return {entry["service"]: entry for entry in json.loads(shown.stdout)["services"]}


def test_logs_errors_shows_the_payments_fault_in_payments_orders_and_the_gateway(stack: DemoStack) -> None:
    set_faults(stack, "payments", {"error_ratio": {"/charges": 0.3}})
    try:
        with httpx.Client(base_url=stack.gateway_url, trust_env=False, timeout=10) as client:
            answers = [check_out(client) for _ in range(CHECKOUTS)]
    finally:
        set_faults(stack, "payments", None)
    assert 502 in answers

    failed = {name: failed_requests(stack, name) for name in ("gateway", "orders", "payments")}
    assert failed["payments"] >= answers.count(502) > 0

    def counted() -> dict[str, dict[str, Any]] | None:
        report = error_report(stack)
        seen = {name: report.get(name, {}).get("kinds", {}).get("http_5xx", 0) for name in failed}
        return report if seen == failed else None

    # one line per failed request, each counted as an HTTP 5xx, nothing twice
    report = wait_for(counted, "a log line for every failed request", timeout=20, interval=0.5)
    assert {name: report[name]["errors"] for name in failed} == failed

    def top(service: str) -> str:
        return "\n".join(m["example"] for m in report[service]["top"])

    assert '"POST /charges HTTP/1.1" 500' in top("payments")
    assert "fault injected: 30% of /charges requests fail" in top("payments")
    assert '"POST /checkout HTTP/1.1" 502' in top("orders")
    assert "payments answered HTTP 500 (fault injected)" in top("orders")
    assert '"POST /api/checkout HTTP/1.1" 502' in top("gateway")
    assert "orders answered HTTP 502 (payments answered HTTP 500 (fault injected))" in top("gateway")
    assert "ERROR" in top("orders")

    table = opsplane(stack, "logs", "--errors", "--since", "10m")
    assert table.returncode == 1
    assert "payments: top messages" in table.stdout and "orders: top messages" in table.stdout


def test_an_unreachable_downstream_is_named_in_the_failure_line(stack: DemoStack) -> None:
    assert stack.runtime is not None
    stack.runtime.down(["payments"])
    try:
        with httpx.Client(base_url=stack.gateway_url, trust_env=False, timeout=10) as client:
            assert check_out(client) == 502

        def line() -> str | None:
            shown = opsplane(stack, "logs", "orders", "--since", "1m", "--grep", "payments unavailable")
            return shown.stdout if '"POST /checkout HTTP/1.1" 502' in shown.stdout else None

        text = wait_for(line, "the failed checkout in the orders log", timeout=20, interval=0.5)
        assert "ERROR" in text and "refused" in text
    finally:
        stack.runtime.up(["payments"])
        stack.wait_for_gateway()


async def test_an_exception_in_a_handler_is_logged_with_its_route_cause_and_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    def routes(_runtime: ShopRuntime) -> APIRouter:
        router = APIRouter()

        @router.get("/widgets/{widget_id}")
        async def widget(widget_id: int) -> dict[str, int]:
            raise RuntimeError(f"widget {widget_id} is on fire")

        return router

    app = build_app(ServiceSpec("widgets", routes), load_settings({}))
    transport = httpx.ASGITransport(app=app)  # it raises what escapes the app: nothing must
    with caplog.at_level(logging.ERROR, logger="shop.requests"):
        async with httpx.AsyncClient(transport=transport, base_url="http://widgets") as client:
            answer = await client.get("/widgets/7")

    assert answer.status_code == 500 and answer.json()["error"] == "internal error"
    [record] = [r for r in caplog.records if r.name == "shop.requests"]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith('"GET /widgets/7 HTTP/1.1" 500 in ')
    assert record.getMessage().endswith(
        "(route /widgets/{widget_id}): unhandled RuntimeError: widget 7 is on fire")
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
