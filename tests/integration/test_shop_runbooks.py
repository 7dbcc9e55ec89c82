"""The shipped runbooks run against the shop, with its faults on: the error fault sends
high-error-rate down the branch that restarts the service, which clears the fault, and it
waits for the errors to fall; the latency fault does the same for high-response-time;
cache-issues flushes the real Redis once the name is typed; database-issues probes the real
PostgreSQL and, the pool having room, leaves it alone with the queries to look at. A dry run
of every shipped runbook, deployment-rollback among them, runs nothing and records nothing.

PromQL steps ask `serve`'s API (the demo keeps its metrics in opsplane), with a viewer token;
the runs use a 10 s window over 2 s scrapes so that a fault shows within seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opsplane.clock import SystemClock
from opsplane.config.loader import load
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port
from opsplane.runbooks import runner, service
from opsplane.runbooks.flows import LivePlatform
from opsplane.runbooks.loader import catalog
from opsplane.runbooks.models import render, resolve_parameters
from opsplane.store import Store
from tests.integration.conftest import set_faults
from tests.runbooks.shipped import SHIPPED
from tests.support.polling import wait_for
from tests.support.serve import Serve

WINDOW = {"window": "10s"}
EDITS = (("defaults: {interval: 5s", "defaults: {interval: 2s"),)


@dataclass
class Shop:
    stack: DemoStack
    serve: Serve
    inventory: Any
    environ: dict[str, str]
    store: Store

    def platform(self) -> LivePlatform:
        return LivePlatform(self.inventory, base_dir=self.stack.base, store=self.store, clock=SystemClock(),
                            environ=self.environ)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    stack = DemoStack(tmp_path_factory.mktemp("runbooks") / "demo", paging=False,
                      proxy=False, backups=False)
    serve: Serve | None = None
    store: Store | None = None
    try:
        stack.start_servers()
        api_port = free_port()
        path = stack.write_inventory(api_port)
        text = path.read_text()
        for old, new in EDITS:
            assert old in text, f"the demo inventory no longer contains {old!r}"
            text = text.replace(old, new)
        path.write_text(text)
        inventory = load(path)
        stack.start_shop(inventory)
        serve = Serve(stack.base, path, port=api_port)
        serve.start()
        token = json.loads(serve.cli("token", "create", "--name", "runbooks", "--role", "viewer",
                                     "--json"))["token"]
        store = Store.open(stack.store_url)
        yield Shop(stack, serve, inventory, {**stack.environ(), "OPSPLANE_TOKEN": token}, store)
    finally:
        if store is not None:
            store.close()
        output = serve.stop() if serve is not None else ""
        stack.stop()
        assert "Traceback" not in output, output


class Person:
    """Answers each confirmation as told by step id, allows every unsafe step, types a cache's
    name when told to."""

    actor = "cli:ana"

    def __init__(self, typed: bool = False, **confirms: bool) -> None:
        self.confirms = {k.replace("_", "-"): v for k, v in confirms.items()}
        self.typed_name = typed
        self.asked: list[str] = []

    def confirm(self, run: Any, step: Any) -> bool | None:
        self.asked.append(step.id)
        return self.confirms.get(step.id)

    def allow(self, run: Any, step: Any, plan: str) -> str | None:
        self.asked.append(step.id)
        return "yes"

    def typed(self, run: Any, step: Any, word: str) -> bool | None:
        self.asked.append(f"type {word}")
        return self.typed_name

    def happened(self, run: Any, step: Any, attempt: int) -> str | None:
        return None


def _run(shop: Shop, name: str, person: Person, **given: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """Run the shipped runbook `name` to its end; its state and each step's last (outcome, output)."""
    loaded = catalog(shop.inventory, shop.stack.base)[name]
    assert loaded.builtin
    values, problems = resolve_parameters(loaded.runbook, given)
    assert problems == []
    clock = SystemClock()
    run_id = runner.start(shop.store, runbook=render(loaded.runbook, values), parameters=values,
                          requested_by=person.actor, mode="manual", clock=clock)
    driver = runner.Runner(shop.store, shop.platform(), clock=clock, actor=person.actor, person=person,
                           sleep=time.sleep)
    try:
        state = driver.drive(run_id)
    finally:
        driver.close()
    with shop.store.session() as session:
        rows = service.steps(session, run_id)
        steps = {row.step_id: (row.outcome or row.state, row.output) for row in rows}
    return state, steps


def _holds(shop: Shop, expr: str) -> bool:
    return shop.platform().promql(expr).true


def _pids(shop: Shop) -> dict[str, list[int | None]]:
    """Each service's processes, by the runtime."""
    found: dict[str, list[int | None]] = {}
    for instance in shop.stack.runtime.status():
        found.setdefault(instance.service, []).append(instance.pid)
    return found


def _faults(shop: Shop, name: str) -> dict[str, Any]:
    answer = httpx.get(f"http://127.0.0.1:{shop.stack.ports[name]}/admin/faults", trust_env=False,
                       headers={"Authorization": f"Bearer {shop.stack.admin_token()}"})
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _ratio(service_name: str) -> str:
    return (f'(sum(rate(http_requests_total{{service="{service_name}",status=~"5.."}}[10s])) or vector(0)) '
            f'/ sum(rate(http_requests_total{{service="{service_name}"}}[10s]))')


def test_a_dry_run_of_every_shipped_runbook_runs_and_records_nothing(shop: Shop) -> None:
    shop.stack.redis.client().set("kept", "1")  # type: ignore[union-attr]
    pids = _pids(shop)
    with shop.store.session() as session:
        runs_before = len(service.get_all(session, limit=1000))
    seen = {e["id"] for e in json.loads(shop.serve.cli("events", "--json", "--limit", "10000"))}
    for name in SHIPPED:
        ran = shop.serve.run("runbook", "run", name, "--dry-run")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "dry run, nothing is run or recorded" in ran.stdout
    rollback = shop.serve.run("runbook", "run", "deployment-rollback", "--dry-run", "-p", "service=orders")
    assert "roll orders back to its previous release" in rollback.stdout
    with shop.store.session() as session:
        assert len(service.get_all(session, limit=1000)) == runs_before
    events = json.loads(shop.serve.cli("events", "--json", "--limit", "10000"))
    new = [e for e in events if e["id"] not in seen]
    assert not [e for e in new if e["kind"].startswith(("runbook.", "runtime.", "deploy.", "alert.silence"))]
    assert _pids(shop) == pids  # nothing restarted
    assert shop.stack.redis.client().get("kept") == "1"  # type: ignore[union-attr]


def test_high_error_rate_restarts_the_failing_service_and_waits_for_the_errors_to_fall(shop: Shop) -> None:
    before = _pids(shop)
    set_faults(shop.stack, "orders", {"error_ratio": {"*": 1.0}})
    try:
        wait_for(lambda: _holds(shop, f"{_ratio('orders')} > 0.05"), "orders' errors in its metrics",
                 timeout=60, interval=1)
        person = Person(after_deploy=False, restart_ok=True)
        state, steps = _run(shop, "high-error-rate", person, service="orders", threshold="0.05", **WINDOW)
    finally:
        set_faults(shop.stack, "orders", None)
    assert state == "succeeded", steps
    assert steps["erroring"][0] == "ok" and steps["still"] == ("ok", "erroring was ok: on to by-route")
    assert steps["after-deploy"][0] == "no"  # not a deploy: the restart branch
    assert "rollback" not in steps and "over" not in steps and "hand-over" not in steps
    assert steps["restart"][0] == "ok" and "restarted orders" in steps["restart"][1]
    assert steps["falls"][0] == "ok" and steps["recovered"][0] == "ok"
    assert _pids(shop)["orders"] != before["orders"]  # a new process, without the fault
    assert _faults(shop, "orders")["error_ratio"] == {}


def test_high_response_time_restarts_the_slow_service_and_waits_for_it_to_answer_in_time(shop: Shop) -> None:
    p95 = ('histogram_quantile(0.95, sum by (le) '
           '(rate(http_request_duration_seconds_bucket{service="catalog"}[10s])))')
    set_faults(shop.stack, "catalog", {"latency_ms": {"*": 800}})
    try:
        wait_for(lambda: _holds(shop, f"{p95} > 0.5"), "catalog's slowness in its metrics", timeout=60,
                 interval=1)
        state, steps = _run(shop, "high-response-time", Person(restart_ok=True), service="catalog", **WINDOW)
    finally:
        set_faults(shop.stack, "catalog", None)
    assert state == "succeeded", steps
    assert steps["slow"][0] == "ok" and steps["still"] == ("ok", "slow was ok: on to by-route")
    assert steps["restart"][0] == "ok" and "scale" not in steps and "fast" not in steps
    assert steps["faster"][0] == "ok"
    assert _faults(shop, "catalog")["latency_ms"] == {}


def test_high_error_rate_on_a_healthy_service_changes_nothing(shop: Shop) -> None:
    wait_for(lambda: _holds(shop, f"{_ratio('payments')} < bool 0.05"), "payments answering", timeout=30)
    person = Person()
    state, steps = _run(shop, "high-error-rate", person, service="payments", threshold="0.05", **WINDOW)
    assert state == "succeeded"
    assert steps["erroring"][0] == "failed" and steps["still"] == ("ok", "erroring was failed: on to over")
    assert person.asked == [] and "restart" not in steps and "rollback" not in steps


def test_cache_issues_flushes_the_real_redis_once_its_name_is_typed(shop: Shop) -> None:
    client = shop.stack.redis.client()  # type: ignore[union-attr]
    client.set("session:1", "cart")
    person = Person(typed=True, flush_ok=True)
    state, steps = _run(shop, "cache-issues", person)
    assert state == "succeeded", steps
    assert steps["probe"][0] == "ok" and steps["answers"] == ("ok", "probe was ok: on to memory")
    assert "type redis" in person.asked
    assert steps["flush"][0] == "ok" and "flushed cache redis" in steps["flush"][1]
    assert client.get("session:1") is None
    # then the catalog loads its hot keys again: the first page and 20 products
    assert steps["warm"] == ("ok", "catalog loaded 21 keys into redis")
    # the first page, and the 20 products most put in carts (which ones depends on what the
    # shoppers did so far; shoppers still browsing may have cached a few more since)
    assert client.exists("shop:products:1:20:") == 1
    assert len(list(client.scan_iter("shop:product:*"))) >= 20
    assert steps["healthy"][0] == "ok" and "down" not in steps


def test_database_issues_probes_postgres_and_leaves_a_pool_with_room_alone(shop: Shop) -> None:
    person = Person()
    state, steps = _run(shop, "database-issues", person)
    assert state == "succeeded", steps
    assert steps["probe"][0] == "ok" and steps["answers"] == ("ok", "probe was ok: on to pool")
    assert 'service="orders"' in steps["pool"][1]  # the pool's figures, from the shop's own metrics
    assert steps["pool-full"][0] == "failed"
    assert steps["exhausted"] == ("ok", "pool-full was failed: on to queries")
    assert "restart" not in steps and person.asked == []
    assert "pg_stat_activity" in steps["queries"][1]
