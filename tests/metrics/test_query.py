"""`opsplane serve` scrapes a target into its sample store and `opsplane query` evaluates PromQL
over it through the API: `up`, aggregations, a target turning to garbage, refused constructs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.polling import wait_for
from tests.support.serve import Serve

PAGE = (b'# TYPE orders_total counter\n'
        b'orders_total{status="completed"} 40\n'
        b'orders_total{status="payment_failed"} 2\n')


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Serve, LocalHttpServer, dict[str, str]]]:
    with LocalHttpServer({"/metrics": Reply(body=PAGE)}) as target:
        inventory = tmp_path / "opsplane.yaml"
        inventory.write_text(
            "platform: {name: shop}\n"
            "defaults: {interval: 300ms, timeout: 1s}\n"
            f"services:\n  orders: {{port: {target.port}, metrics_path: /metrics}}\n")
        serve = Serve(tmp_path, inventory)
        token = json.loads(serve.cli("token", "create", "--name", "q", "--role", "viewer", "--json"))["token"]
        serve.start()
        env = {**serve.env, "OPSPLANE_TOKEN": token}
        try:
            yield serve, target, env
        finally:
            output = serve.stop()
            assert "Traceback" not in output, output


def query(serve: Serve, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsplane", "-c", str(serve.inventory), "query", *args,
                           "--url", serve.url], cwd=serve.workdir, env=env, capture_output=True, text=True,
                          timeout=60)


def vector(serve: Serve, env: dict[str, str], expr: str) -> dict[str, str]:
    shown = query(serve, env, expr, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)["data"]
    assert data["resultType"] == "vector"
    return {json.dumps(s["metric"], sort_keys=True): s["value"][1] for s in data["result"]}


def test_scraped_samples_answer_promql_with_prometheus_labels(watched) -> None:
    serve, target, env = watched
    wait_for(lambda: vector(serve, env, "up"), "a first scrape")
    labels = {"job": "orders", "service": "orders", "instance": f"127.0.0.1:{target.port}",
              "env": "production"}
    assert vector(serve, env, "up") == {json.dumps({"__name__": "up", **labels}, sort_keys=True): "1"}
    assert vector(serve, env, "sum by (status) (orders_total)") == {
        '{"status": "completed"}': "40", '{"status": "payment_failed"}': "2"}
    shown = query(serve, env, 'orders_total{status="completed"}')
    assert shown.returncode == 0 and shown.stdout.strip().endswith("40"), shown.stdout
    ranged = query(serve, env, "up", "--range", "2s", "--step", "1s", "--json")
    assert json.loads(ranged.stdout)["data"]["resultType"] == "matrix"


def test_a_target_sending_garbage_is_down_and_reported_not_fatal(watched) -> None:
    serve, target, env = watched
    wait_for(lambda: vector(serve, env, "up"), "a first scrape")
    target.script.routes["/metrics"] = Reply(body=b"<html><body>oops</body></html>")
    wait_for(lambda: list(vector(serve, env, "up").values()) == ["0"], "up to turn 0")
    assert vector(serve, env, "orders_total") == {}  # stale at once, not 5 minutes later
    recorded = json.loads(serve.cli("events", "--kind", "metrics.scrape", "--json"))
    [down] = [e for e in recorded if e["outcome"] == "critical"]
    assert down["target"] == "orders"
    assert down["details"]["reason"].startswith("unreadable metrics: line 1: expected a metric name")


@pytest.mark.parametrize(("expr", "said"), [
    ("max_over_time(orders_total[5m:1m])", "subqueries are not supported"),
    ('count_values("v", orders_total)', "unsupported aggregation 'count_values'"),
    ("sum(orders_total", "unclosed left parenthesis"),
])
def test_an_expression_outside_the_subset_is_refused_by_name(watched, expr: str, said: str) -> None:
    serve, _, env = watched
    shown = query(serve, env, expr)
    assert shown.returncode == 3
    assert said in shown.stderr and "Traceback" not in shown.stderr


def test_query_needs_a_token(watched) -> None:
    serve, _, env = watched
    shown = query(serve, {k: v for k, v in env.items() if k != "OPSPLANE_TOKEN"}, "up")
    assert shown.returncode == 3 and "OPSPLANE_TOKEN" in shown.stderr
