"""`opsplane health` against real local targets: JSON field by field, exit codes, filters."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.passwords import PG_PASSWORD


def opsplane(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "PG_PASSWORD": PG_PASSWORD}
    return subprocess.run([sys.executable, "-m", "opsplane", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def web():
    routes = {
        "/health": Reply(body=b'{"status": "ok", "db": "up"}', content_type="application/json"),
        "/slow": Reply(delay=0.3),
    }
    with LocalHttpServer(routes) as server:
        yield server


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "opsplane.yaml"
    path.write_text(body)
    return path


def inventory(web_port: int, pg_port: int, closed_port: int, *, slow: bool, down: bool) -> str:
    lines = [
        "platform: {name: shop}",
        "environments: {production: {}, staging: {host: 127.0.0.2}}",
        "services:",
        "  backend:",
        f"    port: {web_port}",
        "    criticality: critical",
        "    team: platform",
        "    depends_on: [postgres-main" + (", payments" if down else "") + "]",
        "    checks: [{type: http, path: /health, json: {path: status, value: ok}}]",
    ]
    if slow:
        lines += ["  search:", f"    port: {web_port}",
                  "    checks: [{type: http, path: /slow, latency_warning: 100ms}]"]
    if down:
        lines += ["  payments:", f"    port: {closed_port}", "    checks: [{type: tcp}]"]
    lines += ["databases:", "  postgres-main:", f"    port: {pg_port}",
              "    password: env:PG_PASSWORD", "    checks: [{type: postgres}]"]
    return "\n".join(lines) + "\n"


def test_all_ok_exits_0_and_reports_every_field(tmp_path, web, postgres_cluster, free_port) -> None:
    path = write(tmp_path, inventory(web.port, postgres_cluster.port, free_port, slow=False, down=False))
    run = opsplane("-c", str(path), "health", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["platform"] == "shop" and report["environment"] == "production"
    assert report["state"] == "OK" and report["exit_code"] == 0
    assert report["summary"] == {"OK": 2, "WARNING": 0, "UNKNOWN": 0, "CRITICAL": 0}
    backend, database = report["services"]
    assert backend["name"] == "backend" and backend["section"] == "services"
    assert backend["criticality"] == "critical" and backend["team"] == "platform"
    assert backend["state"] == "OK" and backend["impacted"] is False and backend["root_causes"] == []
    [check] = backend["checks"]
    assert check["name"] == "http" and check["type"] == "http"
    assert check["target"] == f"http://127.0.0.1:{web.port}/health"
    assert check["state"] == "OK" and check["reason"].startswith("HTTP 200 in ")
    assert check["metrics"]["status"] == 200 and check["duration_ms"] > 0
    assert database["name"] == "postgres-main" and database["section"] == "databases"
    pg = database["checks"][0]
    assert pg["metrics"]["max_connections"] > pg["metrics"]["connections"] >= 1


def test_warning_exits_1(tmp_path, web, postgres_cluster, free_port) -> None:
    path = write(tmp_path, inventory(web.port, postgres_cluster.port, free_port, slow=True, down=False))
    run = opsplane("-c", str(path), "health", "--json", cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    search = next(s for s in json.loads(run.stdout)["services"] if s["name"] == "search")
    assert search["state"] == "WARNING"


def test_critical_dependency_exits_2_and_names_the_root_cause(
    tmp_path, web, postgres_cluster, free_port
) -> None:
    path = write(tmp_path, inventory(web.port, postgres_cluster.port, free_port, slow=False, down=True))
    run = opsplane("-c", str(path), "health", "--json", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    services = {s["name"]: s for s in json.loads(run.stdout)["services"]}
    assert services["payments"]["state"] == "CRITICAL"
    assert services["payments"]["reason"] == f"tcp: refuses connections — 127.0.0.1:{free_port}"
    assert services["backend"]["impacted"] is True
    assert services["backend"]["root_causes"] == [
        {"component": "payments", "path": ["payments"],
         "reason": f"refuses connections — 127.0.0.1:{free_port}"}]
    # the table names the cause too, and where it was looked for
    table = opsplane("-c", str(path), "health", cwd=tmp_path)
    assert table.returncode == 2
    assert (f"impacted: depends on payments, which refuses connections — 127.0.0.1:{free_port}"
            in " ".join(table.stdout.split())), table.stdout


def test_a_failing_service_with_a_failing_dependency_shows_both_and_where(
    tmp_path, free_port
) -> None:
    with LocalHttpServer({"/orders": Reply(503, b"down")}) as server:
        url = server.url("/orders")
        path = write(tmp_path, "\n".join([
            "platform: {name: shop}",
            "services:",
            "  orders:",
            f"    port: {server.port}",
            "    depends_on: [payments]",
            "    checks: [{type: http, path: /orders}, {type: tcp}]",
            "  payments:",
            f"    port: {free_port}",
            "    checks: [{type: http}, {type: tcp}]",
        ]) + "\n")
        run = opsplane("-c", str(path), "health", "--json", cwd=tmp_path)
        table = opsplane("-c", str(path), "health", "--detailed", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    services = {s["name"]: s for s in json.loads(run.stdout)["services"]}
    payments, orders = services["payments"], services["orders"]
    assert payments["reason"] == (f"http: refuses connections — http://127.0.0.1:{free_port}/; "
                                  f"tcp: refuses connections — 127.0.0.1:{free_port}")
    own, dependency = orders["reason"].split("; ")
    assert own.startswith("http: HTTP 503 in ") and own.endswith(f" — {url}")
    assert dependency == (f"depends on payments, which refuses connections — "
                          f"http://127.0.0.1:{free_port}/")
    assert [c["component"] for c in orders["root_causes"]] == ["payments"]
    shown = " ".join(table.stdout.replace("│", " ").split())
    assert "CRITICAL ⇣" in shown and f" — {url}; {dependency}" in shown, table.stdout
    assert f"refuses connections — 127.0.0.1:{free_port}" in shown


def test_service_filter_and_environment(tmp_path, web, postgres_cluster, free_port) -> None:
    path = write(tmp_path, inventory(web.port, postgres_cluster.port, free_port, slow=False, down=True))
    only = opsplane("-c", str(path), "health", "--json", "--service", "backend", cwd=tmp_path)
    report = json.loads(only.stdout)
    assert [s["name"] for s in report["services"]] == ["backend"]
    assert only.returncode == 0  # backend's own check passes; the dependency is not checked
    staging = opsplane("-c", str(path), "health", "--json", "--env", "staging",
                       "--service", "payments", cwd=tmp_path)
    [payments] = json.loads(staging.stdout)["services"]
    assert payments["checks"][0]["target"] == f"127.0.0.2:{free_port}"


def test_detailed_table_shows_the_figures(tmp_path, web, postgres_cluster, free_port) -> None:
    path = write(tmp_path, inventory(web.port, postgres_cluster.port, free_port, slow=False, down=False))
    run = opsplane("-c", str(path), "health", "--detailed", cwd=tmp_path)
    assert run.returncode == 0
    assert "connections=" in run.stdout and "latency_ms=" in run.stdout
    # a primary is not in recovery: said in words, not as Python's False
    assert "in_recovery=no" in run.stdout
    assert not re.search(r"=(None|True|False)\b", run.stdout), run.stdout


@pytest.mark.parametrize("args, message", [
    (["health", "--service", "nope"], "unknown service 'nope'"),
    (["health", "--env", "qa"], "unknown environment 'qa'"),
    (["health", "--interval", "0"], "Invalid value"),
])
def test_usage_errors_exit_3(tmp_path, web, postgres_cluster, free_port, args, message) -> None:
    path = write(tmp_path, inventory(web.port, postgres_cluster.port, free_port, slow=False, down=False))
    run = opsplane("-c", str(path), *args, cwd=tmp_path)
    assert run.returncode == 3
    assert message in run.stderr


def test_invalid_inventory_exits_3_before_probing_anything(tmp_path, web) -> None:
    path = write(tmp_path, f"platform: {{name: shop}}\nservices:\n  web:\n    port: {web.port}\n"
                           "    checks: [{type: http, path: /health, timout: 2s}]\n")
    before = len(web.seen)
    run = opsplane("-c", str(path), "health", cwd=tmp_path)
    assert run.returncode == 3
    assert f"{path}:5:42: services.web.checks[0].timout: unknown field 'timout'; did you mean 'timeout'?" \
        in run.stderr.replace("\n", "")
    assert len(web.seen) == before


def test_watch_refreshes_until_interrupted(tmp_path, web, postgres_cluster, free_port) -> None:
    import signal

    path = write(tmp_path, inventory(web.port, postgres_cluster.port, free_port, slow=False, down=True))
    process = subprocess.Popen(
        [sys.executable, "-m", "opsplane", "-c", str(path), "health", "--watch", "--json",
         "--interval", "0.5"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PG_PASSWORD": PG_PASSWORD})
    try:
        reports = [json.loads(process.stdout.readline()) for _ in range(3)]
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert len({r["checked_at"] for r in reports}) == 3  # three separate rounds
    assert all(r["state"] == "CRITICAL" for r in reports)
    assert process.returncode == 2  # the last round's exit code, not a crash
    assert "Traceback" not in stderr
