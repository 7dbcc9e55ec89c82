"""The built-in HighErrorRate end to end on the shop: 5 % of the checkout service's answers
turned into 500s page once for that service and resolve once the fault is removed, with the
rule pack's own expression over a short window; a healthy shop fires nothing, and the
fault pages nothing else: the gateway's alerts about the same 500s are muted by it.

"Checkout" is the orders service (team checkout), which serves /api/checkout behind the
gateway. The fault is on the whole service rather than on its /checkout route alone: under
the shop's buying sessions (a cart, one to three items, then the checkout) a route-only 5 %
is 1 to 1.5 % of orders' answers over a 20 s window, which cannot be told from the 1 %
threshold, so the alert would flap instead of firing once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from opsplane.config.loader import load
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port
from tests.integration.conftest import set_faults
from tests.support.polling import wait_for
from tests.support.serve import Serve
from tests.support.webhook import Hook

WINDOW = 20  # seconds: the pack's rate window, ten scrapes of 2 s
ALERTING = """\
alerting:
  evaluation_interval: 1s
  builtin_rules: {{for: 5s, window: {window}s}}
  route: {{receiver: hook, group_by: [alertname, service], group_wait: 5s, group_interval: 1s}}
  receivers:
    hook: {{webhook: {{url: "http://127.0.0.1:{port}/hook"}}}}
"""
# Half the shoppers buy (a fifth in the demo), at 30 requests/s: orders then answers about
# 14 requests/s, so a 20 s window holds a dozen injected errors or more, never none.
EDITS = (
    ("defaults: {interval: 5s", "defaults: {interval: 2s"),
    ("--rps, '20', --duration, '0']",
     "--rps, '30', --mix, 'browse=0.3,search=0.2,buy=0.5', --duration, '0']"),
    # every card is approved and no charge fails, so whatever pages is the injected fault
    ("        SHOP_VERSION: '{version}'\n", "        SHOP_VERSION: '{version}'\n"
     "        SHOP_PAYMENT_SUCCESS_RATE: '1'\n        SHOP_PAYMENT_ERROR_RATE: '0'\n"),
)
CHECKOUT_ERRORS = {"error_ratio": {"*": 0.05}}


def _inventory(text: str, hook_port: int) -> str:
    for old, new in EDITS:
        assert old in text, f"the demo inventory no longer contains {old!r}"
        text = text.replace(old, new)
    return text + ALERTING.format(window=WINDOW, port=hook_port)


@pytest.fixture(scope="module")
def error_watched_shop(
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoStack, Serve, Hook]]:
    stack = DemoStack(tmp_path_factory.mktemp("error-rate") / "demo", paging=False,
        host_check=False, proxy=False)
    hook = Hook()
    serve: Serve | None = None
    try:
        stack.start_servers()
        path = stack.write_inventory(free_port())
        path.write_text(_inventory(path.read_text(), hook.port))
        stack.start_shop(load(path))
        serve = Serve(stack.base, path)
        serve.start()
        yield stack, serve, hook
    finally:
        output = serve.stop() if serve is not None else ""
        stack.stop()
        hook.close()
        assert "Traceback" not in output, output


def _query(serve: Serve, token: str, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{serve.url}/api/v1/query", params={"query": expr},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10, trust_env=False)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _paged(hook: Hook, status: str) -> list[tuple[str, str]]:
    """(alertname, service) of every alert notified with `status`, in arrival order."""
    return [(a["labels"]["alertname"], a["labels"].get("service", "")) for m in hook.received
            for a in m["alerts"] if a["status"] == status]


def _fired(serve: Serve) -> set[tuple[str, str]]:
    """(alertname, service) of every alert that has fired, from the event log."""
    return {(e["target"], e["service"]) for e in json.loads(
        serve.cli("events", "--kind", "alert.firing", "--json", "--limit", "1000"))}


ORDERS_ERRORS = ("HighErrorRate", "orders")
# The gateway passes orders' 500s on to shoppers, so its own alerts follow from the fault.
GATEWAY_ECHO = {("HighErrorRate", "gateway"), ("LowGatewaySuccess", "gateway")}


def test_five_percent_errors_on_checkout_page_high_error_rate_once_and_resolve(error_watched_shop) -> None:
    stack, serve, hook = error_watched_shop
    token = json.loads(serve.cli("token", "create", "--name", "probe", "--role", "viewer", "--json"))["token"]
    # A healthy shop first: a whole window of orders' traffic, evaluated, and nothing fired.
    full_window = f'count_over_time(up{{service="orders"}}[{WINDOW}s]) >= {WINDOW // 2}'
    wait_for(lambda: _query(serve, token, full_window), "a full window of orders' samples", timeout=60)
    [traffic] = _query(serve, token, f'sum(rate(http_requests_total{{service="orders"}}[{WINDOW}s]))')
    assert float(traffic["value"][1]) > 4, traffic  # enough checkout traffic for the errors to show
    assert _fired(serve) == set() and hook.received == []

    set_faults(stack, "orders", CHECKOUT_ERRORS)
    try:
        wait_for(lambda: ORDERS_ERRORS in _paged(hook, "firing"), "the HighErrorRate page", timeout=45)
    finally:
        set_faults(stack, "orders", None)
    # The gateway's alerts (if they fired) are muted by it, as the gateway depends on
    # orders: orders is the one page.
    assert _paged(hook, "firing") == [ORDERS_ERRORS]
    [page] = [a for m in hook.received for a in m["alerts"]]
    assert page["labels"]["severity"] == "P1"
    assert page["annotations"]["summary"].startswith("orders answers ")
    assert page["annotations"]["runbook"] == "opsplane runbook run high-error-rate --param service=orders"

    wait_for(lambda: ORDERS_ERRORS in _paged(hook, "resolved"), "the resolved notification",
             timeout=WINDOW + 30)
    assert _paged(hook, "firing") == [ORDERS_ERRORS]  # paged once, not every cycle
    assert _paged(hook, "resolved") == [ORDERS_ERRORS]
    # Nothing fired but the fault and its echo at the gateway, which stays muted when orders'
    # window empties a scrape before the gateway's (inhibit_dependents_hold).
    assert _fired(serve) - {ORDERS_ERRORS} <= GATEWAY_ECHO, _fired(serve)
