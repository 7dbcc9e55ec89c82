"""Links that arrive with alerts are followed only when they are web addresses: an alert
received from a Prometheus with a `javascript:` runbook shows that text on the Alerts page,
never a link, while http(s) links stay links, here and on a service's page alike."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from opsplane.drivers.sandbox.ports import free_port
from opsplane.links import web_link
from tests.support.polling import wait_for
from tests.support.serve import Serve, serving, signed_in_client

SCRIPT = "javascript:fetch('/ui/events').then(r=>r.text()).then(alert)"
RUNBOOK = "https://runbooks.example/orders/down"


@pytest.mark.parametrize("url", [
    "https://runbooks.example/orders", "http://127.0.0.1:8080/x?y=1#z", "HTTPS://Runbooks.Example/",
])
def test_web_addresses_are_links(url: str) -> None:
    assert web_link(url) == url


@pytest.mark.parametrize("url", [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox", "https:javascript:alert(1)",
    "http://", "//evil.example/x", "/ui/events", "runbooks/orders.md", "https://a.example/\nx",
    "https://a.example/ x", "", None,
])
def test_anything_else_is_not_a_link(url: str | None) -> None:
    assert web_link(url) is None


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    port = free_port()  # serve's own: its one check passes
    inventory = ("platform: {name: shop}\n"
                 "services:\n"
                 f"  orders: {{port: {port}, runbook: {json.dumps(SCRIPT)},\n"
                 "           checks: [{type: tcp}]}\n"
                 f"  payments: {{port: 2, runbook: {json.dumps(RUNBOOK)}}}\n")
    with serving(tmp_path, inventory, port) as serve:
        yield serve


def received(name: str, runbook: str) -> dict[str, object]:
    ends = (datetime.now(UTC) + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    return {"labels": {"alertname": name, "service": "orders", "severity": "critical"},
            "annotations": {"summary": f"{name} fires", "runbook_url": runbook,
                            "dashboard": "javascript:alert(2)"},
            "generatorURL": "javascript:alert(3)", "endsAt": ends}


def test_a_received_javascript_runbook_is_shown_as_text_not_as_a_link(serve: Serve) -> None:
    sender = json.loads(serve.cli("token", "create", "--name", "prometheus", "--role", "responder",
                                  "--json"))["token"]
    viewer = json.loads(serve.cli("token", "create", "--name", "wall", "--role", "viewer",
                                  "--json"))["token"]
    serve.start()
    sent = httpx.post(serve.url + "/api/v2/alerts", timeout=10,
                      json=[received("OrdersDown", SCRIPT), received("OrdersSlow", RUNBOOK)],
                      headers={"Authorization": f"Bearer {sender}"})
    assert sent.status_code == 200, sent.text
    with signed_in_client(serve.url, viewer) as browser:
        page = wait_for(lambda: (text := browser.get("/ui/alerts").text).count("data-alert=") == 2
                        and text, "both received alerts on the Alerts page", timeout=20)
        links = re.findall(r'href="([^"]*)"', page)
        assert not [link for link in links if "script" in link.lower()], links
        assert RUNBOOK in links  # a web address is still a link
        down = page[page.index('data-alert="OrdersDown"'):]
        down = down[:down.index("</tr>")]
        assert "javascript:fetch(&#39;/ui/events&#39;)" in down  # shown, as text

        service = browser.get("/ui/services/orders").text
        assert "javascript:" in service
        assert not re.findall(r'href="javascript:', service)
        assert f'href="{RUNBOOK}"' in browser.get("/ui/services/payments").text
