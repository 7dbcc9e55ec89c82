"""The dashboard over the real shop, in headless Debian Chromium: sign in, see every shop
service and its instances, inject a fault into payments and watch the open page turn it
CRITICAL and orders impacted. Screenshots go to build/test-artifacts/."""

from __future__ import annotations

import json
import re

import httpx

from opsplane.demo.stack import SHOP_SERVICES, DemoStack
from tests.integration.conftest import set_faults
from tests.support.browser import ARTIFACTS, CHROMIUM, browser_tests, expect, sync_playwright
from tests.support.serve import Serve

pytestmark = browser_tests


def test_the_dashboard_shows_the_shop_and_a_fault_in_it(shop: DemoStack) -> None:
    serve = Serve(shop.base, shop.inventory_path)
    token = json.loads(serve.cli("token", "create", "--name", "browser", "--role", "viewer",
                                 "--json"))["token"]
    serve.start()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert sync_playwright is not None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(serve.url + "/ui/login")
                page.fill("#token", token)
                page.click("button[type=submit]")
                page.wait_for_url(serve.url + "/ui/")

                def row(component: str):  # type: ignore[no-untyped-def]
                    return page.locator(f'tr[data-component="{component}"]')

                for name in (*SHOP_SERVICES, "postgres-main", "redis"):
                    expect(row(name).locator("td.state")).to_have_text("OK", timeout=20_000)
                page.screenshot(path=str(ARTIFACTS / "shop-overview-ok.png"), full_page=True)

                page.goto(serve.url + "/ui/instances")
                for name in (*SHOP_SERVICES, "traffic"):  # instance 0 of each, running
                    expect(page.get_by_role("row", name=re.compile(rf"^{name} 0 running "))).to_be_visible()

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
                browser.close()
    finally:
        set_faults(shop, "payments", None)
        output = serve.stop()
        assert "Traceback" not in output, output
