"""The dashboard over the real shop, in headless Debian Chromium: sign in, see every shop
service and its instances, inject a fault into payments and watch the open page turn it
CRITICAL and orders impacted; on payments' own page, its error ratio, request rate and
latency charts with axes and units, the range picker, and the threshold of the rule that
fires. Screenshots go to build/test-artifacts/."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from opsplane.demo.stack import SHOP_SERVICES, DemoStack
from tests.integration.conftest import set_faults
from tests.support.browser import (
    ARTIFACTS,
    browser_tests,
    expect,
    signed_in,
)
from tests.support.polling import wait_for
from tests.support.serve import Serve

pytestmark = browser_tests


def test_the_dashboard_shows_the_shop_and_a_fault_in_it(shop: DemoStack) -> None:
    serve = Serve(shop.base, shop.inventory_path)
    token = json.loads(serve.cli("token", "create", "--name", "browser", "--role", "viewer",
                                 "--json"))["token"]
    serve.start()
    try:
        with signed_in(serve.url, token) as page:
            def row(component: str):  # type: ignore[no-untyped-def]
                return page.locator(f'tr[data-component="{component}"]')

            for name in (*SHOP_SERVICES, "postgres-main", "redis"):
                expect(row(name).locator("td.state")).to_have_text("OK", timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "shop-overview-ok.png"), full_page=True)

            page.goto(serve.url + "/ui/instances")
            for name in (*SHOP_SERVICES, "traffic"):  # instance 0 of each, running
                running = re.compile(rf"^{name} 0 (v1 |- )?running ")
                expect(page.get_by_role("row", name=running)).to_be_visible()

            # Every charge fails: payments' error check turns CRITICAL, orders is impacted.
            set_faults(shop, "payments", {"error_ratio": {"*": 1.0}})
            charge = {"order_id": 1, "amount_cents": 1200, "currency": "EUR"}
            for _ in range(20):
                httpx.post(f"http://127.0.0.1:{shop.ports['payments']}/charges", json=charge,
                           trust_env=False)
            page.goto(serve.url + "/ui/")
            expect(row("payments").locator("td.state")).to_have_text("CRITICAL", timeout=20_000)
            expect(row("payments")).to_contain_text("errors.ratio_1m")
            expect(row("orders")).to_contain_text("Root cause: payments", timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / "shop-overview-payments-failing.png"),
                            full_page=True)
    finally:
        set_faults(shop, "payments", None)
        output = serve.stop()
        assert "Traceback" not in output, output


# The built-in rules with a short hold and a rate window of four scrapes, so that a rule fires
# within seconds of the fault instead of the manual's five minutes.
QUICK_RULES = "  evaluation_interval: 1s\n  builtin_rules: {for: 2s, window: 20s}\n"


def test_a_service_page_charts_the_shop_with_axes_a_range_and_a_firing_rule_s_threshold(
        shop: DemoStack, tmp_path: Path) -> None:
    inventory = shop.base / "opsplane-charts.yaml"  # beside the shop's, for its runtime state
    # the demo's alerting section (its receivers), with rules that fire within seconds
    text = shop.inventory_path.read_text()
    assert text.count("\nalerting:\n") == 1
    inventory.write_text(text.replace("\nalerting:\n", "\nalerting:\n" + QUICK_RULES))
    serve = Serve(tmp_path, inventory)
    token = json.loads(serve.cli("token", "create", "--name", "charts", "--role", "viewer",
                                 "--json"))["token"]
    serve.start()
    charge = {"order_id": 1, "amount_cents": 1200, "currency": "EUR"}
    try:
        with signed_in(serve.url, token, "/ui/services/payments") as page:
            def chart(key: str):  # type: ignore[no-untyped-def]
                return page.locator(f'figure[data-chart="{key}"]')

            # a fresh serve: the last 15 minutes, in 15 s steps, filling within a few scrapes
            # of the shoppers' traffic (until payments' histogram has samples, the latency
            # chart is its checks')
            expect(page.locator("#charts-title")).to_have_text("Over the last 15 min")
            expect(chart("requests").locator(".summary")).to_contain_text("all now", timeout=40_000)
            expect(chart("latency")).to_be_visible(timeout=20_000)
            for key, unit in (("errors", "%"), ("requests", "/s"), ("latency", " ms")):
                axis = chart(key).locator("svg text.ytick")
                expect(axis.first).to_have_text(re.compile(rf"^0(\.0+)?{re.escape(unit)}$"))
                assert axis.count() >= 3
                expect(chart(key).locator("svg text.xtick").first).to_have_text(
                    re.compile(r"^\d\d:\d\d$"))
                expect(chart(key).locator("svg text.axis-note")).to_have_text("UTC")
            expect(chart("latency").locator(".legend")).to_have_text("p50p95p99")
            expect(chart("latency").locator("svg polyline.line").first).to_be_visible(timeout=20_000)
            page.screenshot(path=str(ARTIFACTS / "shop-service-payments-15m.png"), full_page=True)

            page.click('nav.ranges a[data-range="1h"]')
            page.wait_for_url(serve.url + "/ui/services/payments?range=1h")
            expect(page.locator("#charts-title")).to_have_text("Over the last 1 h")
            expect(page.locator('nav.ranges a[aria-current="true"]')).to_have_text("1 h")
            ticks = chart("requests").locator("svg text.xtick").all_text_contents()
            minutes = [int(t[:2]) * 60 + int(t[3:]) for t in ticks]
            assert {(b - a) % 1440 for a, b in zip(minutes, minutes[1:], strict=False)} == {10}

            page.click('nav.ranges a[data-range="15m"]')
            page.wait_for_url(serve.url + "/ui/services/payments?range=15m")
            set_faults(shop, "payments", {"error_ratio": {"*": 1.0}})
            threshold = chart("errors").locator("svg line.threshold.firing")

            def fired() -> bool:  # keep charges coming while the open page refreshes itself
                for _ in range(5):
                    httpx.post(f"http://127.0.0.1:{shop.ports['payments']}/charges", json=charge,
                               trust_env=False)
                return threshold.count() > 0

            wait_for(fired, "HighErrorRate's threshold on the error chart", timeout=90, interval=1)
            expect(chart("errors").locator("svg text.threshold-label")).to_have_text(
                "HighErrorRate > 1%")
            # every charge fails (health checks and scrapes still succeed): far above 1 %
            expect(chart("errors").locator(".summary")).to_have_text(re.compile(r"^now [1-9]\d*(\.\d+)?%"))
            page.screenshot(path=str(ARTIFACTS / "shop-service-payments-failing.png"), full_page=True)
            page.locator("#service-charts").screenshot(
                path=str(ARTIFACTS / "shop-service-payments-charts.png"))
    finally:
        set_faults(shop, "payments", None)
        output = serve.stop()
        assert "Traceback" not in output, output
