"""The SLO pages in headless Debian Chromium against `opsplane serve` as a process, its SLO
worker judging SLOs whose past the store holds (written with the SLO service's `record` before
`serve` starts): one that spent half its budget, one that spent it all (its deploys held), one
with nothing recorded. The list shows each budget and state, an SLO's page its burn-down and
SLI per day, and the service page its SLOs. Screenshots go to build/test-artifacts/."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsplane.slo import service
from opsplane.store import Store
from tests.support.browser import ARTIFACTS, browser_tests, expect, signed_in
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.serve import Serve

pytestmark = browser_tests
# About half: the real clock is past the hour, so the window's edge has left part of an hour.
HALF = re.compile(r"\b(49|50|51)(\.\d)?%")


def write_hours(store: Store, slo: str, since: datetime, hours: int, *, good: float, total: float) -> None:
    """One recorded minute at the start of each hour from `since`, holding the hour's events."""
    first = int(since.timestamp()) // 60
    with store.session() as session:
        for h in range(hours):
            service.record(session, slo=slo, minute=first + 60 * h, good=good, total=total)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    with LocalHttpServer({"/health": Reply(200, b"ok")}) as catalog:
        inventory = tmp_path / "opsplane.yaml"
        inventory.write_text(
            "platform: {name: shop}\n"
            "services:\n"
            f"  catalog: {{url: 'http://127.0.0.1:{catalog.port}',\n"
            "            checks: [{type: http, path: /health, interval: 5s}]}\n"
            "caches:\n  sessions: {port: 6379}\n"
            "slos:\n"
            "  catalog-availability:\n"
            "    service: catalog\n"
            "    description: Catalog health checks that answer OK\n"
            "    objective: 99%\n"
            "    window: 7d\n"
            "    sli: {checks: {}}\n"
            "  catalog-this-month:\n"
            "    service: catalog\n"
            "    objective: 99.9%\n"
            "    calendar: {unit: month}\n"
            "    sli: {checks: {}}\n"
            "  catalog-quiet:\n"
            "    service: catalog\n"
            "    objective: 99.5%\n"
            "    window: 28d\n"
            "    sli: {checks: {component: catalog}}\n"
            "    deploy_gate: false\n")
        serve = Serve(tmp_path, inventory)
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        store = Store.open(serve.env["OPSPLANE_DATABASE_URL"])
        try:
            # a clean week, then 3.5 days at 1 % bad, then 3.5 clean days: half the budget spent
            name = "catalog-availability"
            write_hours(store, name, now - timedelta(days=14), 7 * 24, good=1000, total=1000)
            write_hours(store, name, now - timedelta(days=7), 84, good=990, total=1000)
            write_hours(store, name, now - timedelta(hours=84), 84, good=1000, total=1000)
            # this month at 0.3 % bad for a 0.1 % budget: spent three times over
            month = now.replace(day=1, hour=0)
            write_hours(store, "catalog-this-month", month, int((now - month).total_seconds() // 3600),
                        good=997, total=1000)
        finally:
            store.close()
        try:
            yield serve
        finally:
            output = serve.stop()
            assert "Traceback" not in output, output


def test_the_slo_pages_in_a_browser(serve: Serve) -> None:
    token = json.loads(serve.cli("token", "create", "--name", "vera", "--role", "viewer", "--json"))["token"]
    serve.start()
    with signed_in(serve.url, token, "/ui/slos") as page:
        page.on("dialog", lambda dialog: pytest.fail(f"a script ran: {dialog.message}"))
        expect(page.locator('nav a[aria-current="page"]')).to_have_text("SLOs")
        half = page.locator('tr[data-slo="catalog-availability"]')
        expect(half).to_have_attribute("data-state", "ok")
        expect(half.locator(".budget-figure")).to_have_text(HALF)
        expect(page.locator('tr[data-slo="catalog-this-month"]')).to_have_attribute("data-state", "exhausted")
        expect(page.locator('tr[data-slo="catalog-quiet"]')).to_contain_text("no events in the window yet")
        page.screenshot(path=str(ARTIFACTS / "dashboard-slos.png"), full_page=True)

        half.locator("th a").click()
        page.wait_for_url(serve.url + "/ui/slos/catalog-availability")
        expect(page.locator('[data-figure="remaining"]')).to_contain_text(HALF)
        chart = page.locator('figure[data-chart="burndown"]')
        expect(chart.locator(".summary")).to_contain_text(HALF)
        box = chart.locator("svg").bounding_box()
        assert box is not None and box["width"] > 600, box  # drawn at its size, not squeezed
        expect(page.locator("#slo-gate")).to_contain_text("deploys allowed")
        page.screenshot(path=str(ARTIFACTS / "dashboard-slo.png"), full_page=True)

        page.goto(serve.url + "/ui/slos/catalog-this-month")
        expect(page.locator("#slo-gate")).to_contain_text("deploys held")
        month = page.locator('figure[data-chart="burndown"]')
        expect(month).to_contain_text("spending it evenly would leave")
        page.screenshot(path=str(ARTIFACTS / "dashboard-slo-exhausted.png"), full_page=True)

        page.goto(serve.url + "/ui/services/catalog")
        slos = page.locator("#service-slos")
        expect(slos.locator('li[data-slo="catalog-availability"]')).to_contain_text(HALF)
        slos.screenshot(path=str(ARTIFACTS / "dashboard-service-slos.png"))
