"""The public status page in headless Debian Chromium, against `opsplane serve` as a process:
no sign-in, the components' public states, an incident with only its public update, an
announced maintenance window, and no request leaving the control plane's origin. Screenshots
go to build/test-artifacts/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import (
    ARTIFACTS,
    browser_tests,
    chromium_page,
    expect,
)
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.polling import wait_for
from tests.support.serve import Serve

pytestmark = browser_tests

PUBLIC_UPDATE = "Some searches return no results. We have found the cause and are fixing it."
PRIVATE_UPDATE = "Index shard 3 on search-node-2 is corrupt; rebuilding from the replica."


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Serve]:
    targets = {"catalog": LocalHttpServer({"/health": Reply()}),
               "cart": LocalHttpServer({"/health": Reply(503, b'{"status": "down"}')})}
    for server in targets.values():
        server.__enter__()
    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text(
        "platform: {name: shop}\n"
        "defaults: {interval: 500ms, timeout: 1s}\n"
        "services:\n"
        f"  catalog: {{port: {targets['catalog'].port}, checks: [{{type: http, path: /health}}]}}\n"
        f"  cart: {{port: {targets['cart'].port}, checks: [{{type: http, path: /health}}]}}\n"
        "  traffic: {kind: worker, status_page: false,\n"
        f"            port: {targets['catalog'].port}, checks: [{{type: http, path: /health}}]}}\n"
        "caches:\n"
        "  sessions: {port: 1, checks: []}\n")
    serve = Serve(tmp_path, inventory)
    try:
        yield serve
    finally:
        output = serve.stop()
        for server in targets.values():
            server.__exit__(None, None, None)
        assert "Traceback" not in output, output


def components(serve: Serve) -> dict[str, dict[str, Any]]:
    body = httpx.get(serve.url + "/status.json", timeout=5).json()
    return {c["name"]: c for c in body["components"]}


def states(serve: Serve) -> dict[str, str]:
    return {name: c["state"] for name, c in components(serve).items()}


def test_a_customer_sees_public_states_and_only_public_updates(platform: Serve) -> None:
    serve = platform
    opened = json.loads(serve.cli("incident", "open", "--service", "catalog", "--severity", "P2",
                                  "--title", "Index shard 3 corrupt",
                                  "--public-title", "Search results incomplete", "--json"))
    number = str(opened["id"])
    serve.cli("incident", "update", number, "--status", "investigating", "--summary", PRIVATE_UPDATE)
    serve.cli("incident", "update", number, "--status", "identified", "--summary", PUBLIC_UPDATE,
              "--public")
    start = datetime.now(UTC) + timedelta(days=2)
    serve.cli("status", "maintenance", "add", "--component", "cart", "--start", start.isoformat(),
              "--end", (start + timedelta(hours=1)).isoformat(), "--message",
              "Cart moves to a new database; carts are kept.")
    serve.start()
    # serve has probed both: catalog answers (P2 incident: degraded), cart answers 503
    wait_for(lambda: states(serve) == {"catalog": "degraded", "cart": "major outage",
                                       "sessions": "no data"}, "the checks' first results")
    assert "traffic" not in httpx.get(serve.url + "/status.json", timeout=5).text
    # today's bars follow within the uptime's 5 s reuse: cart has been down all along
    wait_for(lambda: components(serve)["cart"]["days"][-1]["uptime"] == 0.0, "cart's bar for today")

    with chromium_page(1100, 900) as page:
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        answer = page.goto(serve.url + "/status")
        assert answer is not None and answer.status == 200
        assert page.url == serve.url + "/status"  # no sign-in on the way
        expect(page.locator("#banner")).to_have_text("Major outage")
        expect(page.locator('li[data-component="cart"] .badge')).to_have_text("major outage")
        expect(page.locator('li[data-component="catalog"] .badge')).to_have_text("degraded")
        expect(page.locator('li[data-component="sessions"] .badge')).to_have_text("no data")
        incident = page.locator(f'article[data-incident="INC-{number}"]')
        expect(incident).to_contain_text("Search results incomplete")
        expect(incident).to_contain_text(PUBLIC_UPDATE)
        expect(incident).to_contain_text("Minor impact on catalog")
        expect(page.locator("body")).not_to_contain_text("shard 3")  # neither update nor title
        expect(page.locator("body")).not_to_contain_text("127.0.0.1")
        expect(page.locator("body")).not_to_contain_text("HTTP 503")
        expect(page.locator("article.notice")).to_contain_text("Cart moves to a new database")
        days = page.locator('li[data-component="cart"] svg.uptime g.day')
        assert days.count() == 90
        # today: down all along, over the few seconds watched so far, a stub of a bar
        expect(days.last.locator("rect.up-low")).to_have_count(1)
        expect(days.last.locator("title")).to_have_text(re.compile(r": 0\.00 %, only \d+ s of data$"))
        expect(days.first.locator("title")).to_have_text(re.compile(r": no data$"))  # before monitoring
        expect(page.locator('li[data-component="cart"] .uptime-text')).to_have_text(
            re.compile(r"^0\.00 % uptime over the last \d+ s$"))
        expect(page.locator('li[data-component="sessions"] .uptime-text')).to_have_text("no data yet")
        expect(page.locator("#monitoring")).to_contain_text("Monitoring began ")
        # the traffic generator is watched but kept off the public page
        expect(page.locator('li[data-component="traffic"]')).to_have_count(0)
        expect(page.locator("main")).not_to_contain_text("traffic")
        page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
        assert requested and all(url.startswith(serve.url + "/") for url in requested), requested

        page.goto(serve.url + "/ui/")
        assert page.url.startswith(serve.url + "/ui/login")  # the dashboard still wants a token
