"""The dashboard in a real browser: headless Debian Chromium against `opsplane serve` as a process.

Sign in with a token made by `opsplane token create`, see every service, break one target and
watch its row turn CRITICAL on the open page (the page refreshes itself), and keep screenshots
in build/test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    ARTIFACTS,
    Page,
    browser_tests,
    chromium_page,
    expect,
)
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.serve import Serve

pytestmark = browser_tests


def metrics(requests: int) -> bytes:
    return (f'http_requests_total{{code="200"}} {requests}\n'
            f'http_requests_total{{code="500"}} {requests // 10}\n').encode()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[Serve, dict[str, LocalHttpServer]]]:
    targets = {
        "catalog": LocalHttpServer({"/health": Reply(body=b'{"status": "ok"}'),
                                    "/metrics": Reply(body=metrics(100))}),
        "cart": LocalHttpServer({"/health": Reply()}),
        "gateway": LocalHttpServer({"/health": Reply()}),
    }
    for server in targets.values():
        server.__enter__()
    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text(
        "platform: {name: shop}\n"
        "defaults: {interval: 500ms, timeout: 1s}\n"
        "services:\n"
        f"  gateway: {{port: {targets['gateway'].port}, kind: gateway, criticality: critical, "
        "team: edge, depends_on: [catalog, cart], checks: [{type: http, path: /health}]}\n"
        f"  catalog: {{port: {targets['catalog'].port}, team: catalog, metrics_path: /metrics, "
        "checks: [{type: http, path: /health}, {type: tcp}]}\n"
        f"  cart: {{port: {targets['cart'].port}, team: checkout, "
        "checks: [{type: http, path: /health}]}\n")
    serve = Serve(tmp_path, inventory)
    try:
        yield serve, targets
    finally:
        output = serve.stop()
        for server in targets.values():
            server.__exit__(None, None, None)
        assert "Traceback" not in output, output


def row(page: Page, component: str) -> Any:
    return page.locator(f'tr[data-component="{component}"]')


def test_sign_in_see_every_service_and_watch_one_fail(platform) -> None:
    serve, targets = platform
    created = serve.cli("token", "create", "--name", "browser", "--role", "viewer", "--json")
    token = json.loads(created)["token"]
    serve.start()
    with chromium_page(1400, 900) as page:
        page.goto(serve.url + "/")
        assert page.url.startswith(serve.url + "/ui/login")

        page.fill("#token", "ops_wrong")
        with page.expect_response(lambda r: r.url.endswith("/ui/login")) as answer:
            page.click("button[type=submit]")
        assert answer.value.status == 401
        expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")

        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(serve.url + "/ui/")
        for name in ("gateway", "catalog", "cart"):
            expect(row(page, name)).to_be_visible()
        cookie = next(c for c in page.context.cookies() if c["name"] == "opsplane_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""  # scripts cannot read the token

        # every check has reported OK, and catalog's request rate is known (two scrapes)
        for name in ("gateway", "catalog", "cart"):
            expect(row(page, name).locator("td.state")).to_have_text("OK", timeout=15_000)
        targets["catalog"].script.routes["/metrics"] = Reply(body=metrics(400))
        expect(row(page, "catalog")).to_contain_text("requests now", timeout=15_000)
        page.screenshot(path=str(ARTIFACTS / "dashboard-overview-ok.png"), full_page=True)

        # catalog starts answering 503: the open page shows it without a reload
        targets["catalog"].script.routes["/health"] = Reply(503, b'{"status": "down"}')
        expect(row(page, "catalog").locator("td.state")).to_have_text("CRITICAL", timeout=20_000)
        expect(row(page, "catalog")).to_contain_text("HTTP 503")
        expect(row(page, "gateway")).to_contain_text("Root cause: catalog")
        expect(row(page, "gateway").locator("td.state")).to_contain_text("impacted")
        page.screenshot(path=str(ARTIFACTS / "dashboard-overview-catalog-down.png"), full_page=True)

        page.click('tr[data-component="catalog"] th a')
        page.wait_for_url(serve.url + "/ui/services/catalog")
        expect(page.locator("#service-events")).to_contain_text("OK \u2192 CRITICAL", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "dashboard-service-catalog.png"), full_page=True)

        page.goto(serve.url + "/ui/dependencies")
        expect(page.locator('svg.graph a[href="/ui/services/catalog"]')).to_contain_text("CRITICAL")
        page.screenshot(path=str(ARTIFACTS / "dashboard-dependencies.png"), full_page=True)

        page.click("text=Sign out")
        page.wait_for_url(serve.url + "/ui/login")
        page.goto(serve.url + "/ui/")
        assert page.url.startswith(serve.url + "/ui/login")
