"""The public status page never names what customers do not see: an incident that a rule
opened on a host, under `opsplane serve`, reaches /status and /status.json with a public
title and the public services that depend on the host, and nothing of the host's name, its
check or the rule's words appears in anything the page serves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from opsplane.drivers.sandbox.ports import free_port
from tests.support.polling import wait_for
from tests.support.serve import Serve, serving

HOST = "db-host-7.internal"
# what must never reach a customer: the host, the parts of its name, its check, the rule's words
INTERNAL = (HOST, "db-host", "host-7", ".internal", "tcp", "failed", "in a row", "CheckFailing",
            "hosts", "reports")
PUBLIC_UPDATE = "Some orders take longer to confirm. We are working on it."


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    port = free_port()  # serve's own: the services' checks pass, the host's never does
    inventory = (
        "platform: {name: shop}\n"
        "defaults: {interval: 300ms, timeout: 1s}\n"
        "services:\n"
        f"  orders: {{port: {port}, depends_on: [{HOST}], checks: [{{type: tcp}}]}}\n"
        f"  catalog: {{port: {port}, checks: [{{type: tcp}}]}}\n"
        f"  reports: {{port: {port}, status_page: false, depends_on: [{HOST}],\n"
        "            checks: [{type: tcp}]}\n"
        "hosts:\n"
        f"  {HOST}: {{port: {free_port()}, checks: [{{type: tcp}}]}}\n"
        "alerting:\n"
        "  evaluation_interval: 500ms\n"
        "  builtin_rules: {thresholds: {check_failures: 2}}\n")
    with serving(tmp_path, inventory, port) as serve:
        yield serve


def served(serve: Serve) -> dict[str, str]:
    """Every answer the status page gives a stranger, by path."""
    paths = ["/status", "/status.json", "/status/static/status.css", "/ui/static/dashboard.css"]
    answers = {path: httpx.get(serve.url + path, timeout=10) for path in paths}
    assert all(a.status_code == 200 for a in answers.values()), answers
    return {path: a.text for path, a in answers.items()}


def test_an_incident_a_rule_opened_on_a_host_shows_no_internal_name(serve: Serve) -> None:
    serve.start()
    [incident] = wait_for(lambda: serve.read("incident", "list"), "CheckFailing to open an incident",
                          timeout=30)
    assert incident["service"] == HOST and HOST in incident["title"]  # what responders see
    serve.cli("incident", "update", str(incident["id"]), "--status", "identified",
              "--summary", PUBLIC_UPDATE, "--public")
    start = datetime.now(UTC) + timedelta(days=1)
    serve.cli("status", "maintenance", "add", "--component", HOST, "--start", start.isoformat(),
              "--end", (start + timedelta(hours=1)).isoformat(), "--message", "Disks are replaced.")

    body = httpx.get(serve.url + "/status.json", timeout=10).json()
    [shown] = body["incidents"]
    assert shown["title"] == "Service disruption of orders"  # P1, on what depends on the host
    assert shown["components"] == ["orders"]
    assert [u["message"] for u in shown["updates"]] == [PUBLIC_UPDATE]
    assert [c["name"] for c in body["components"]] == ["orders", "catalog"]
    states = {c["name"]: c["state"] for c in body["components"]}
    assert states["orders"] == "partial outage"
    [notice] = body["maintenance"]
    assert notice["components"] == ["orders"]
    for path, text in served(serve).items():
        for word in INTERNAL:
            assert word not in text, (path, word)
    page = httpx.get(serve.url + "/status", timeout=10).text
    assert "Service disruption of orders" in page and PUBLIC_UPDATE in page


def test_a_public_title_given_by_a_responder_is_the_one_shown(serve: Serve) -> None:
    serve.start()
    [incident] = wait_for(lambda: serve.read("incident", "list"), "CheckFailing to open an incident",
                          timeout=30)
    serve.cli("incident", "update", str(incident["id"]), "--status", "identified",
              "--summary", PUBLIC_UPDATE, "--public", "--public-title", "Slow order confirmations")
    body = httpx.get(serve.url + "/status.json", timeout=10).json()
    assert [i["title"] for i in body["incidents"]] == ["Slow order confirmations"]
    assert serve.read("incident", "show", str(incident["id"]))["public_title"] == (
        "Slow order confirmations")
