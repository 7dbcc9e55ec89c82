"""The incident pages in headless Debian Chromium against `opsplane serve` as a process: a check
that keeps failing fires CheckFailing (P1), which opens an incident; it is acknowledged with
`opsplane incident ack`; the browser finds it in the list and its timeline shows the alert
and the acknowledgement; a responder posts a public status update from the page. Screenshots
go to build/test-artifacts/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import (
    ARTIFACTS,
    browser_tests,
    chromium_page,
    expect,
)
from tests.support.polling import wait_for
from tests.support.serve import Serve, failing_check_inventory

pytestmark = browser_tests


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    inventory = failing_check_inventory(tmp_path / "opsplane.yaml")  # orders' check fails at once
    serve = Serve(tmp_path, inventory)
    try:
        yield serve
    finally:
        output = serve.stop()
        assert "Traceback" not in output, output


def test_an_alert_opened_incident_shows_the_alert_and_the_ack_on_its_page(serve: Serve) -> None:
    token = json.loads(serve.cli("token", "create", "--name", "alice", "--role", "responder",
                                 "--json"))["token"]
    serve.start()
    [incident] = wait_for(lambda: json.loads(serve.cli("incident", "list", "--json")),
                          "CheckFailing to open an incident", timeout=30)
    ref = f"INC-{incident['id']}"
    serve.cli("incident", "ack", str(incident["id"]))
    with chromium_page(1400, 1000) as page:
        page.goto(serve.url + "/ui/incidents")
        assert page.url.startswith(serve.url + "/ui/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(serve.url + "/ui/incidents")

        row = page.locator(f'tr[data-incident="{ref}"]')
        expect(row).to_contain_text("P1")
        expect(row).to_contain_text("acknowledged")
        expect(row).to_contain_text("orders")
        page.screenshot(path=str(ARTIFACTS / "dashboard-incidents.png"), full_page=True)

        row.locator("th a").click()
        page.wait_for_url(serve.url + f"/ui/incidents/{incident['id']}")
        timeline = page.locator("#incident-timeline")
        expect(timeline.locator('tr[data-kind="alert.firing"]')).to_contain_text(
            "Alert CheckFailing firing")
        expect(timeline.locator('tr[data-kind="incident.acknowledged"]')).to_contain_text(
            "acknowledged; commander")
        expect(page.locator('tr[data-target="Time to acknowledge"]')).to_contain_text("met")
        expect(page.locator("#incident-alerts")).to_contain_text("CheckFailing (P1)")
        page.screenshot(path=str(ARTIFACTS / "dashboard-incident.png"), full_page=True)

        page.select_option("#update-status", "identified")
        page.fill("#update-summary", "Orders cannot be placed.")
        page.fill("#update-actions", "Restarting orders.")
        page.check("input[name=public]")
        page.click("text=Post update")
        page.wait_for_url(serve.url + f"/ui/incidents/{incident['id']}")
        expect(page.locator("#incident-updates")).to_contain_text("Orders cannot be placed.")
        expect(page.locator("#incident-updates .badge.public")).to_have_text("public")
        expect(timeline.locator('tr[data-kind="incident.updated"]')).to_contain_text(
            "token:alice")
        page.screenshot(path=str(ARTIFACTS / "dashboard-incident-updated.png"), full_page=True)

        page.click("text=Read the draft")
        expect(page.locator("#postmortem-draft")).to_contain_text(f"# Post-mortem: {ref}")
