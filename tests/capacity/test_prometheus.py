"""The KPIs through a real Prometheus scraping the real shop every second: a load test asks it
for the platform's KPIs over its run, `opsplane report kpi` reads them now, and
`opsplane report run kpi-report` keeps them as a report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from opsplane.drivers.sandbox.prometheus import TemporaryPrometheus
from tests.capacity.test_loadtest import inventory
from tests.shop.shopstack import REPO, ShopStack
from tests.support.cli import Opsplane
from tests.support.polling import wait_for

SERVICES = ("gateway", "catalog", "orders", "payments")


def test_the_kpis_come_from_the_prometheus_that_scrapes_the_shop(shop: ShopStack, tmp_path: Path) -> None:
    targets = [f"127.0.0.1:{shop.services[name].port}" for name in SERVICES]
    scraping = TemporaryPrometheus(tmp_path / "prometheus", scrape_targets=targets, scrape_interval=1.0)
    with scraping as prometheus:
        wait_for(lambda: len(prometheus.query("up == 1", time.time())["result"]) == 4, "the four scraped")
        given = {**inventory(shop), "metrics": {"source": "prometheus", "prometheus_url": prometheus.url},
                 "capacity": {"window": "1m"}}
        opsplane = Opsplane(tmp_path, given, environ={"PYTHONPATH": str(REPO)})
        ran = opsplane("loadtest", "--users", "3", "--duration", "4s", "--think-time", "0", "--json",
                       code=None)
        report = json.loads(ran.stdout)
        assert report["body"]["platform_problem"] is None
        platform = {k["name"]: k for k in report["body"]["platform_kpis"]}
        assert platform["api_p95"]["value"] is not None and platform["api_p95"]["value"] > 0
        time.sleep(2)  # two more of Prometheus's one-second scrapes: the load's last requests in
        now = opsplane("report", "kpi", "--json", code=None)
        kpis = json.loads(now.stdout)
        assert now.returncode == {"ok": 0, "warning": 1, "critical": 2}[kpis["outcome"]]
        values = {k["name"]: k["value"] for k in kpis["kpis"]}
        assert set(values) == {"search", "api_p95", "db_query_p95", "cache_hit_rate"}
        assert all(v is not None for v in values.values()), values
        assert 0 < values["db_query_p95"] and 0 <= values["cache_hit_rate"] <= 1
        kept = opsplane("report", "run", "kpi-report", "--json", code=None)
        stored = json.loads(kept.stdout)
        assert stored["job"] == "kpi-report" and stored["outcome"] != "failed"
        assert [k["name"] for k in stored["body"]["kpis"]] == ["search", "api_p95", "db_query_p95",
                                                                  "cache_hit_rate"]
