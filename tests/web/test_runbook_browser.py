"""The runbook pages in headless Debian Chromium against `opsplane serve` as a process: runs
started with `opsplane runbook run --auto` (one for an incident, waiting for an operator's
approval; one aborted) are listed, a run's page shows its steps with their output as text and
the commands that take it on, a runbook's page its steps, and the incident's page its run.
Screenshots go to build/test-artifacts/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import ARTIFACTS, browser_tests, expect, signed_in
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.serve import Serve
from tests.web.test_runbook_pages import CATALOG_DOWN, SESSIONS_FLUSH

pytestmark = browser_tests


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    with LocalHttpServer({"/health": Reply(503, b"down")}) as catalog:
        (tmp_path / "runbooks").mkdir()
        (tmp_path / "runbooks" / "catalog-down.yaml").write_text(CATALOG_DOWN)
        (tmp_path / "runbooks" / "sessions-flush.yaml").write_text(SESSIONS_FLUSH)
        inventory = tmp_path / "opsplane.yaml"
        inventory.write_text(
            "platform: {name: shop}\n"
            "services:\n"
            f"  catalog: {{url: 'http://127.0.0.1:{catalog.port}',\n"
            "            checks: [{type: http, path: /health}]}\n"
            "caches:\n  sessions: {port: 6379}\n"
            "runbooks: {dir: runbooks}\n")
        serve = Serve(tmp_path, inventory)
        try:
            yield serve
        finally:
            output = serve.stop()
            assert "Traceback" not in output, output


def test_the_runbook_pages_in_a_browser(serve: Serve) -> None:
    serve.cli("incident", "open", "--service", "catalog", "--severity", "P2", "--title", "catalog is down")
    waiting = serve.run("runbook", "run", "catalog-down", "--auto", "--incident", "1")
    assert waiting.returncode == 1 and "waits for approval" in waiting.stdout, waiting.stdout + waiting.stderr
    assert serve.run("runbook", "run", "catalog-down", "--auto").returncode == 1
    serve.cli("runbook", "abort", "2")
    token = json.loads(serve.cli("token", "create", "--name", "vera", "--role", "viewer", "--json"))["token"]
    serve.start()
    with signed_in(serve.url, token, "/ui/runbooks") as page:
        page.on("dialog", lambda dialog: pytest.fail(f"a script ran: {dialog.message}"))
        expect(page.locator('nav a[aria-current="page"]')).to_have_text("Runbooks")
        listed = page.locator('tr[data-runbook="catalog-down"]')
        expect(listed).to_contain_text("4 of 7: look which logs fine")
        expect(page.locator('tr[data-run="1"]')).to_contain_text("awaiting approval")
        expect(page.locator('tr[data-run="2"]')).to_contain_text("aborted")
        page.screenshot(path=str(ARTIFACTS / "dashboard-runbooks.png"), full_page=True)

        page.locator('tr[data-run="1"] th a').click()
        page.wait_for_url(serve.url + "/ui/runbooks/runs/1")
        expect(page.locator(".run-waits")).to_contain_text("opsplane runbook approve 1 --step go-ahead")
        output = page.locator('li[data-step="logs"] pre.step-output')
        expect(output).to_contain_text("log line 59")
        fits = "(pre) => pre.scrollWidth <= pre.clientWidth && pre.scrollHeight <= pre.clientHeight"
        assert output.evaluate(fits), "the output overflows its box"
        expect(page.locator('li[data-step="look"]')).to_contain_text("HTTP 503")
        page.screenshot(path=str(ARTIFACTS / "dashboard-runbook-run.png"), full_page=True)

        page.locator(".crumbs a", has_text="catalog-down").click()
        page.wait_for_url(serve.url + "/ui/runbooks/catalog-down")
        expect(page.locator('tr[data-step="which"]')).to_contain_text("when failed")
        page.screenshot(path=str(ARTIFACTS / "dashboard-runbook.png"), full_page=True)

        page.goto(serve.url + "/ui/incidents/1")
        runs = page.locator("#incident-runbooks")
        expect(runs.locator('tr[data-run="1"]')).to_contain_text("catalog-down")
        runs.screenshot(path=str(ARTIFACTS / "dashboard-incident-runbooks.png"))
