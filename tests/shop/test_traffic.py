"""The traffic generator against the running shop: its API, its command and its report."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shop.cli import app
from shop.traffic import run_traffic
from shop.traffic_report import TrafficReport
from tests.shop.shopstack import ShopStack, scrape, value


async def test_traffic_reports_success_and_checkouts(shop: ShopStack) -> None:
    before = scrape(shop.url("orders"))
    windows: list[TrafficReport] = []

    report = await run_traffic(shop.url("gateway"), rps=150, duration=2, think_time=0, seed=5,
                               on_progress=windows.append, progress_every=0.5)

    assert report.requests >= 150
    assert report.success_ratio >= 0.99, report.errors
    assert report.checkouts_completed > 0 and report.checkouts_per_s > 0
    assert {"browse", "product", "search", "cart", "add_item", "checkout"} <= set(report.steps)
    assert all(s.p50_ms <= s.p95_ms <= s.p99_ms for s in report.steps.values())
    assert len(windows) >= 2 and all(w.requests > 0 for w in windows)
    completed = value(scrape(shop.url("orders")), "orders_total", status="completed") - value(
        before, "orders_total", status="completed")
    assert completed == report.checkouts_completed
    assert json.loads(json.dumps(report.as_dict()))["checkouts"]["completed"] == report.checkouts_completed


def test_traffic_command_prints_a_json_report(shop: ShopStack) -> None:
    result = CliRunner().invoke(app, ["traffic", "--base-url", shop.url("gateway"), "--rps", "40",
                                      "--duration", "1", "--think-time", "0", "--seed", "3", "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["requests"] > 0 and report["success_ratio"] == 1.0
    assert set(report) >= {"requests_per_s", "checkouts", "steps", "errors", "sessions"}


def test_traffic_against_nothing_reports_failures_not_exceptions(free_port: int) -> None:
    import asyncio

    report = asyncio.run(run_traffic(f"http://127.0.0.1:{free_port}", rps=50, duration=0.5, think_time=0,
                                     seed=1))

    assert report.requests > 0 and report.success_ratio == 0.0
    assert set(report.errors) == {"HttpClientError"}


async def test_a_saturated_run_is_limited_by_concurrency_and_counts_drops(shop: ShopStack) -> None:
    report = await run_traffic(shop.url("gateway"), rps=100_000, duration=1.5, think_time=0, seed=9,
                               concurrency=4)

    assert report.requests > 0 and report.success_ratio == 1.0
    assert report.sessions_dropped > 10 * report.sessions_started


async def test_shoppers_sign_in_first_when_asked_and_a_refused_password_is_no_failure(
        shop: ShopStack) -> None:
    before = scrape(shop.url("gateway"))
    report = await run_traffic(shop.url("gateway"), rps=100, duration=1, think_time=0, seed=4, logins=1.0)

    signed = report.steps["login"].requests
    assert signed == report.sessions_started > 0 and report.success_ratio == 1.0
    after = scrape(shop.url("gateway"))
    counted = {result: value(after, "shop_logins_total", result=result)
               - value(before, "shop_logins_total", result=result) for result in ("ok", "failed")}
    assert counted["ok"] + counted["failed"] == signed and counted["ok"] > counted["failed"]
