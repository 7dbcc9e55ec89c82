"""The budget policy as a deploy gate, over a real store: a spent budget refuses a deploy of its
service with a sentence naming the SLO and how far over; an override with a reason goes through
and the deploy's request event records what it overrode; the pre-check blocks a deploy asked for
before the budget went; SLOs without deploy_gate, other services and rollbacks are never held."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsplane.config.loader import loads
from opsplane.deploy import service as deploys
from opsplane.deploy.gates import GateContext, blocking, check_at_request
from opsplane.deploy.service import DeployRefused
from opsplane.events.service import get_all
from opsplane.slo import service
from opsplane.store import Store

EVENTS = {"bad": 'http_requests_total{status=~"5.."}', "total": "http_requests_total"}
INVENTORY = loads("""\
platform: {name: shop}
services:
  gateway: {port: 8080, metrics_path: /metrics, run: {argv: [gw], version: v1}}
  catalog: {port: 8081, metrics_path: /metrics, run: {argv: [cat], version: v1}}
slos:
  gateway-availability:
    service: gateway
    objective: 99%
    window: 1d
    sli: {events: {bad: 'http_requests_total{status=~"5.."}', total: http_requests_total}}
  catalog-availability:
    service: catalog
    objective: 99%
    window: 1d
    deploy_gate: false
    sli: {events: {bad: 'http_requests_total{status=~"5.."}', total: http_requests_total}}
""")
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def spend(store: Store, slo: str, bad_per_minute: float) -> None:
    first = int(NOW.timestamp()) // 60 - 600
    with store.session() as session:
        for m in range(first, first + 600):
            service.record(session, slo=slo, minute=m, good=100.0 - bad_per_minute, total=100.0)


def ask(store: Store, svc: str, override: dict[str, object] | None) -> int:
    with store.session() as session:
        check_at_request(GateContext(INVENTORY, session, svc, NOW), override=override)
        row = deploys.create(session, service=svc, environment="production", strategy="rolling",
                             from_version="v1", to_version="v2", plan=[{"kind": "precheck"}],
                             params={"override": override} if override else {}, approvals_needed=0,
                             actor="cli:ana", now=NOW)
        return row.id


def test_a_spent_budget_refuses_a_deploy_and_says_which_slo_and_how_far_over(store: Store) -> None:
    spend(store, "gateway-availability", 3.0)  # 3 % failing against a 1 % budget
    with pytest.raises(DeployRefused) as refused:
        ask(store, "gateway", None)
    said = str(refused.value)
    assert ("SLO gateway-availability of gateway has spent its error budget: 300% of it used "
            "(200% over)") in said
    assert "--override --reason" in said and refused.value.exit_code == 3
    with store.session() as session:
        assert deploys.active_for(session, "gateway") is None  # nothing was recorded


def test_an_override_goes_through_and_the_request_records_what_it_overrode(store: Store) -> None:
    spend(store, "gateway-availability", 3.0)
    deploy_id = ask(store, "gateway", {"reason": "the fix for the 500s", "window": "no window applies"})
    with store.session() as session:
        [event] = get_all(session, kind="deploy.requested")
        assert event.details["override"]["reason"] == "the fix for the 500s"
        assert "SLO gateway-availability" in event.details["override"]["gates"][0]
        # the deploy's own pre-check lets it through too
        assert blocking(GateContext(INVENTORY, session, "gateway", NOW)) == []
        assert deploys.get(session, deploy_id).state == "queued"


def test_the_pre_check_blocks_a_deploy_asked_for_before_the_budget_was_spent(store: Store) -> None:
    ask(store, "gateway", None)
    spend(store, "gateway-availability", 2.0)
    with store.session() as session:
        [said] = blocking(GateContext(INVENTORY, session, "gateway", NOW))
    assert said.startswith("SLO gateway-availability of gateway has spent its error budget: 200%")


def test_a_service_with_budget_left_an_slo_without_the_gate_and_a_rollback_are_not_held(store: Store) -> None:
    spend(store, "gateway-availability", 0.5)  # half the budget used
    spend(store, "catalog-availability", 5.0)  # spent, but deploy_gate: false
    ask(store, "gateway", None)
    ask(store, "catalog", None)
    with store.session() as session:
        for row in (deploys.active_for(session, "gateway"), deploys.active_for(session, "catalog")):
            assert row is not None
            row.state = "succeeded"
            row.active_service = None
    with store.session() as session:  # now spent: a rollback goes through all the same
        service.record(session, slo="gateway-availability", minute=int(NOW.timestamp()) // 60 - 1,
                       good=0.0, total=10_000.0)
    with store.session() as session:
        deploy_id, _ = deploys.roll_back_service(session, "gateway", actor="cli:ana", now=NOW, proxied=False)
        assert blocking(GateContext(INVENTORY, session, "gateway", NOW)) == []
        assert deploys.get(session, deploy_id).params["rollback"] is True
