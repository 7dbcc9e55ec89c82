"""An SLO's fast burn end to end on the shop, on the real clock: with a third of the gateway's
answers turned into 500s, the SLO worker records the failing minutes from the scraped counters,
its burn rates cross 14.4 in the 5-minute and the 1-hour windows, and SLOFastBurn pages through
the inventory's route with the SLO's labels; `opsplane slo status` says the budget is spent."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from opsplane.config.loader import load
from opsplane.demo.stack import DemoStack
from opsplane.drivers.sandbox.ports import free_port
from tests.integration.conftest import set_faults
from tests.support.polling import wait_for
from tests.support.serve import Serve
from tests.support.webhook import Hook

# A one-hour window keeps the budget small (1 % of an hour's requests), so a minute of failures
# spends it; the burn rules are the same as a 30-day SLO's.
SLO_AND_ALERTING = """\
slos:
  gateway-availability:
    service: gateway
    objective: 99%
    window: 1h
    sli:
      events:
        bad: http_requests_total{{service="gateway",status=~"5.."}}
        total: http_requests_total{{service="gateway"}}
    alerts: {{min_events: 50, runbook: https://runbooks.example/slo-burn}}
alerting:
  evaluation_interval: 2s
  builtin_rules: {{enabled: false}}
  route: {{receiver: hook, group_by: [alertname, slo], group_wait: 1s, group_interval: 1s}}
  receivers:
    hook: {{webhook: {{url: "http://127.0.0.1:{port}/hook"}}}}
"""


@pytest.fixture(scope="module")
def slo_watched_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoStack, Serve, Hook]]:
    stack = DemoStack(tmp_path_factory.mktemp("slo-burn") / "demo", paging=False, host_check=False,
                      proxy=False)
    hook = Hook()
    serve: Serve | None = None
    try:
        stack.start_servers()
        path = stack.write_inventory(free_port())
        path.write_text(path.read_text().replace("defaults: {interval: 5s", "defaults: {interval: 2s")
                        + SLO_AND_ALERTING.format(port=hook.port))
        stack.start_shop(load(path))
        serve = Serve(stack.base, path)
        serve.start()
        yield stack, serve, hook
    finally:
        output = serve.stop() if serve is not None else ""
        stack.stop()
        hook.close()
        assert "Traceback" not in output, output


def _burn_pages(hook: Hook) -> list[dict[str, str]]:
    return [a["labels"] | {"summary": a["annotations"].get("summary", "")} for m in hook.received
            for a in m["alerts"] if a["labels"]["alertname"] == "SLOFastBurn" and a["status"] == "firing"]


@pytest.mark.slow
def test_a_third_of_the_gateways_answers_failing_pages_a_fast_burn(slo_watched_shop) -> None:
    stack, serve, hook = slo_watched_shop
    set_faults(stack, "gateway", {"error_ratio": {"*": 0.33}})
    try:
        # a minute is recorded 20 s after it ends: the first whole failing minute, then a cycle
        wait_for(lambda: _burn_pages(hook), "the SLOFastBurn page", timeout=180)
    finally:
        set_faults(stack, "gateway", None)
    [page] = _burn_pages(hook)[:1]
    assert page["slo"] == "gateway-availability" and page["service"] == "gateway"
    assert page["severity"] == "P1"
    assert "burns its error budget fast" in page["summary"] and "of the budget left" in page["summary"]
    run = serve.run("slo", "status", "gateway-availability", "--json")
    [status] = json.loads(run.stdout)
    assert status["burn_rates"]["5m"] > 14.4 and status["window_events"]["1h"] >= 50
    assert status["state"] == "exhausted" and run.returncode == 2
