"""The Alerts page and the event list in a real browser, against `opsplane serve` as a process:
values in their rule's unit, the sentence that says who evaluates the rules, events as
sentences; screenshots in build/test-artifacts/."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.browser import (
    ARTIFACTS,
    browser_tests,
    expect,
    signed_in,
)
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.serve import Serve

pytestmark = browser_tests

RUNBOOK = "https://runbooks.example/checkout/payments-failing-charges"


def test_alerts_page_and_event_list_read_as_a_person_writes(tmp_path: Path) -> None:
    routes = {"/health": Reply(), "/metrics": Reply(body=b"failed_share 0.019037883636991926\n")}
    with LocalHttpServer(routes) as target:
        (tmp_path / "opsplane.yaml").write_text(
            "platform: {name: shop}\n"
            "defaults: {interval: 500ms, timeout: 1s}\n"
            f"services:\n  payments: {{port: {target.port}, metrics_path: /metrics, "
            "checks: [{type: http, path: /health}]}\n"
            "alerting:\n"
            "  evaluation_interval: 500ms\n"
            "  builtin_rules: {enabled: false}\n"
            "  rules:\n"
            "    - {name: PaymentsFailing, expr: failed_share > 0.01, severity: P2, unit: ratio,\n"
            "       annotations: {summary: '{{ $value }} of charges fail'},\n"
            f"       runbook: '{RUNBOOK}'}}\n")
        serve = Serve(tmp_path, tmp_path / "opsplane.yaml")
        created = serve.cli("token", "create", "--name", "wall", "--role", "viewer", "--json")
        token = json.loads(created)["token"]
        serve.start()
        try:
            with signed_in(serve.url, token, "/ui/alerts", height=900) as page:
                firing = page.locator('tr[data-alert="PaymentsFailing"]')
                expect(firing).to_contain_text("1.9% of charges fail", timeout=20_000)
                expect(firing.locator("td").nth(3)).to_have_text("1.9%")
                expect(firing.locator(f'a[href="{RUNBOOK}"]')).to_be_visible()
                expect(page.locator("#alert-evaluation")).to_contain_text("Rules last evaluated")
                expect(page.locator("#alert-evaluation")).to_contain_text("every 0.5s")
                page.screenshot(path=str(ARTIFACTS / "dashboard-alerts.png"), full_page=True)

                page.goto(serve.url + "/ui/events")
                events = page.locator("#event-list")
                expect(events).to_contain_text("Check http of payments: new \u2192 OK")
                expect(events).to_contain_text(
                    "Alert PaymentsFailing firing at 1.9% (env=production, instance=")
                for shown in ("{'", "None", "0.019037883636991926"):
                    assert shown not in events.inner_text()
                page.screenshot(path=str(ARTIFACTS / "dashboard-events.png"), full_page=True)
        finally:
            output = serve.stop()
        assert "Traceback" not in output, output
