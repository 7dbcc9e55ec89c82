"""`opsplane loadtest` as a person runs it, against the real shop for a few seconds: progress
while it runs, the users' figures and the KPIs over the run kept as a report; production refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsplane.capacity.loadtest import ClientFigures, judge_run
from opsplane.capacity.models import resolve_kpis
from tests.shop.shopstack import REPO, ShopStack
from tests.support.cli import Opsplane


def command(tmp_path: Path, shop: ShopStack) -> Opsplane:
    """The command of this checkout (not whichever opsplane the interpreter finds first)."""
    return Opsplane(tmp_path, inventory(shop), environ={"PYTHONPATH": str(REPO)})


def inventory(shop: ShopStack) -> dict[str, Any]:
    def service(name: str, kind: str = "api") -> dict[str, Any]:
        return {"kind": kind, "port": shop.services[name].port, "metrics_path": "/metrics"}

    return {"platform": {"name": "shop"}, "environments": {"production": {}, "staging": {}},
            "services": {"gateway": service("gateway", "gateway"), "catalog": service("catalog"),
                         "orders": service("orders"), "payments": service("payments")}}


def test_a_load_test_measures_the_shop_and_keeps_its_report(shop: ShopStack, tmp_path: Path) -> None:
    opsplane = command(tmp_path, shop)
    ran = opsplane("loadtest", "--users", "3", "--duration", "4s", "--env", "staging", "--think-time", "0",
                   "--seed", "5", "--json", code=None)
    assert ran.returncode in (0, 1, 2), ran.stderr
    assert "requests (" in ran.stderr and "p95" in ran.stderr  # progress while it ran
    report = json.loads(ran.stdout)
    assert report["job"] == "loadtest" and report["subject"] == "gateway staging"
    client = report["body"]["client"]
    assert client["requests"] > 20 and client["failed"] == 0
    assert client["throughput_per_s"] > 0 and 0 < client["p50_ms"] <= client["p95_ms"] <= client["p99_ms"]
    assert {"browse", "product", "search"} <= set(client["steps"])
    # the platform's KPIs over the run, from the command's own scrapes of the four services
    platform = {k["name"]: k for k in report["body"]["platform_kpis"]}
    assert set(platform) == {"search", "api_p95", "db_query_p95", "cache_hit_rate"}
    assert platform["api_p95"]["value"] is not None and platform["api_p95"]["value"] > 0
    assert platform["cache_hit_rate"]["value"] is not None
    stored = opsplane.json("report", "list", "--job", "loadtest")
    assert [r["id"] for r in stored] == [report["id"]]
    codes = {"ok": 0, "warning": 1, "critical": 2}
    assert ran.returncode == codes[report["outcome"]]


def test_production_is_refused_without_i_know(shop: ShopStack, tmp_path: Path) -> None:
    opsplane = command(tmp_path, shop)
    ran = opsplane("loadtest", "--users", "1", "--duration", "1s", "--env", "production", code=3)
    assert "--i-know" in ran.stderr
    ran = opsplane("loadtest", "--users", "1", "--duration", "1s", "--env", "qa", code=3)
    assert "no environment 'qa'" in ran.stderr
    assert opsplane.json("report", "list", "--job", "loadtest") == []


def figures(**given: Any) -> ClientFigures:
    search = {"requests": 100, "failed": 0, "p50_ms": 30.0, "p95_ms": 120.0, "p99_ms": 200.0}
    base: dict[str, Any] = {"duration": 10.0, "requests": 1000, "failed": 0, "p50_ms": 20.0, "p95_ms": 90.0,
                            "p99_ms": 150.0, "steps": {"search": search}}
    return ClientFigures(**{**base, **given})


def test_the_judgement_holds_the_users_figures_against_the_targets() -> None:
    report = judge_run(env="staging", target="gateway", users=5, duration=10, figures=figures(), server=None,
                       server_problem="no component has metrics_path to scrape", window=20)
    assert report.outcome == "ok"  # the server's KPIs unread is only noted
    assert [f.subject for f in report.findings] == ["platform KPIs"]
    slow = judge_run(env="staging", target="gateway", users=5, duration=10, figures=figures(p95_ms=600.0),
                     server=None, server_problem=None, window=20)
    assert slow.outcome == "warning"
    assert [f.subject for f in slow.findings] == ["client api_p95"]
    failing = judge_run(env="staging", target="gateway", users=5, duration=10, figures=figures(failed=30),
                        server=None, server_problem=None, window=20)
    assert failing.outcome == "critical" and "3.00% of requests failed" in failing.findings[-1].what
    search = resolve_kpis(None)[0]
    assert search.name == "search" and search.target == 0.3
