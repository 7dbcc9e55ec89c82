"""The closed loop's decisions, as values: which runbook an incident's alerts call for and whether
`runbooks.auto` lets it run unattended, whether recovery is verified or a person must take over,
and what the resolution and the hand-over say. The shipped service-down runbook and the rule
pack's links to it are checked here too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsplane.alerts.models import RulePack
from opsplane.alerts.pack import builtin_rules
from opsplane.config.loader import loads as load_inventory
from opsplane.config.models import Inventory
from opsplane.errors import ConfigError
from opsplane.runbooks import auto
from opsplane.runbooks.loader import BUILTIN_DIR, catalog

AT = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
INVENTORY = """
platform: {name: shop}
services:
  payments: {port: 8001, checks: [{name: health, type: http, path: /health}]}
  orders: {port: 8002, checks: [{type: tcp}]}
caches:
  redis: {port: 6379, checks: [{type: redis}]}
"""
AUTO = "runbooks:\n  auto:\n    - {severities: [P0, P1]}\n"


def inventory(extra: str = AUTO) -> Inventory:
    return load_inventory(INVENTORY + extra)


def firing(name: str = "ServiceNotRunning", severity: str = "P0", service: str = "payments",
           runbook: str | None = "service-down", state: str = "firing") -> auto.Firing:
    return auto.Firing(name, severity, {"service": service, "severity": severity}, runbook, state)


def plan(alerts: list[auto.Firing], extra: str = AUTO) -> auto.Start | auto.Skip:
    inv = inventory(extra)
    runbooks = {name: loaded.runbook for name, loaded in catalog(inv, BUILTIN_DIR).items()}
    return auto.plan(alerts, service="payments", settings=inv.runbooks, catalog=runbooks, inventory=inv)


def test_service_down_ships_runs_unattended_and_the_pack_links_its_down_rules_to_it() -> None:
    shipped = catalog(inventory(), BUILTIN_DIR)["service-down"]
    assert shipped.builtin
    steps = {step.id: step for step in shipped.runbook.steps}
    assert all(step.safe for step in steps.values())  # nothing in it waits for a person
    assert steps["restart"].action == "restart" and steps["back"].kind == "wait_until"
    assert 60 <= steps["back"].timeout <= 120
    assert "opsplane logs ${service} --since 10m" in steps["why"].text
    links = {(rule.name, rule.severity): rule.runbook for rule in builtin_rules(RulePack())}
    assert links[("CheckFailing", "P1")] == "service-down"
    assert links[("ServiceNotRunning", "P0")] == links[("ServiceNotRunning", "P1")] == "service-down"
    assert links[("HighErrorRate", "P1")] == "high-error-rate"  # the others name their shipped runbooks
    assert links[("BackupFailed", "P1")] == "runbooks/backup-failed.md"  # rules without one keep a link


def test_an_alert_whose_rule_names_a_runbook_the_policy_allows_starts_it_for_its_service() -> None:
    started = plan([firing()])
    assert started == auto.Start("service-down", {"service": "payments"}, "ServiceNotRunning", 300.0)


@pytest.mark.parametrize(("alerts", "extra", "why"), [
    ([firing()], "", "runbooks.auto is not set"),
    ([firing(severity="P2")], AUTO, "does not let service-down run for P2 alerts about payments"),
    ([firing()], "runbooks:\n  auto: [{services: [orders]}]\n", "for P0 alerts about payments"),
    ([firing()], "runbooks:\n  auto: [{runbooks: [other]}]\n", "does not let service-down run"),
    ([firing(runbook="runbooks/service-not-running.md")], AUTO, "names no runbook opsplane has"),
    ([firing(name="CheckFailing", severity="P1", service="redis")], AUTO, "unknown service 'redis'"),
])
def test_nothing_runs_when_the_policy_or_the_alert_does_not_call_for_it(
        alerts: list[auto.Firing], extra: str, why: str) -> None:
    skipped = plan(alerts, extra)
    assert isinstance(skipped, auto.Skip)
    assert why in skipped.reason


def test_the_first_alert_that_qualifies_decides_and_its_rule_sets_the_deadline() -> None:
    extra = "runbooks:\n  auto:\n    - {severities: [P0], services: [payments], verify_within: 90s}\n"
    started = plan([firing(name="CheckFailing", severity="P1"), firing()], extra)
    assert isinstance(started, auto.Start)
    assert (started.alert, started.verify_within) == ("ServiceNotRunning", 90.0)


def test_a_policy_naming_a_service_the_inventory_lacks_is_refused_with_its_place() -> None:
    with pytest.raises(ConfigError) as refused:
        inventory("runbooks:\n  auto:\n    - {services: [paymnets]}\n")
    [problem] = refused.value.problems
    assert problem.field == "runbooks.auto[0].services[0]" and problem.line == 10
    assert "did you mean 'payments'" in problem.message
    assert refused.value.exit_code == 3


# --- after the run ------------------------------------------------------------------------------

ENDED = AT + timedelta(seconds=20)
CHECKED = auto.CheckSeen("payments/health", True, ENDED)


def verdict(*, state: str = "succeeded", alerts: list[auto.Firing] | None = None,
            checks: list[auto.CheckSeen] | None = None, now: datetime = ENDED) -> auto.Verdict:
    return auto.verdict(run_state=state, run_reason="step restart failed", waiting_for="a person: step x",
                        ended_at=ENDED if state in ("succeeded", "failed") else None,
                        alerts=alerts if alerts is not None else [firing(state="resolved")],
                        checks=checks if checks is not None else [CHECKED],
                        since=AT, verify_within=60, now=now, every=1)


def test_recovery_is_verified_once_every_alert_resolved_and_every_check_passed_since_the_run() -> None:
    gone = firing(name="CheckFailing", state="gone")
    seen = verdict(alerts=[firing(state="resolved"), gone])
    assert seen == auto.Verified("alerts resolved (CheckFailing, ServiceNotRunning); "
                                 "checks OK (payments/health)")


def test_until_then_it_looks_again_and_at_the_deadline_a_person_takes_over() -> None:
    still = [firing(state="firing")]
    assert verdict(alerts=still) == auto.Watch(ENDED + timedelta(seconds=1))
    deadline = ENDED + timedelta(seconds=60)
    assert verdict(alerts=still, now=deadline - timedelta(seconds=0.5)) == auto.Watch(deadline)
    stale = [auto.CheckSeen("payments/health", True, AT - timedelta(seconds=1))]
    assert isinstance(verdict(checks=stale), auto.Watch)  # an OK from before the run proves nothing
    late = verdict(alerts=still, checks=[auto.CheckSeen("payments/health", False, ENDED)],
                   now=ENDED + timedelta(seconds=60))
    assert late == auto.Escalate("not recovered within 1m of the run's end: alert ServiceNotRunning still "
                                 "firing; check payments/health failing")


@pytest.mark.parametrize(("state", "why"), [
    ("failed", "the run failed: step restart failed"),
    ("waiting", "the run stopped for a person: a person: step x"),
])
def test_a_run_that_fails_or_needs_a_person_hands_over_at_once(state: str, why: str) -> None:
    assert verdict(state=state, alerts=[firing()]) == auto.Escalate(why)


def test_the_resolution_and_the_hand_over_say_what_was_tried() -> None:
    steps = [auto.StepDone("look", "check", "failed", "payments/health: CRITICAL connection refused"),
             auto.StepDone("restart", "action", "failed", "restart refused: cannot start\n(secret missing)")]
    note = auto.hand_over(runbook="service-down", run_id=3, run_state="failed", reason="the run failed: x",
                          steps=steps)
    assert "service-down (run 3) the run failed: x. Paging goes on until someone acknowledges." in note
    assert "- look (check): failed: payments/health: CRITICAL connection refused" in note
    assert "- restart (action): failed: (secret missing)" in note
    summary, cause = auto.resolution(runbook="service-down", run_id=3, service="payments", steps=steps[:1],
                                     seen=auto.Verified("alerts resolved (X); checks OK (payments/health)"))
    assert summary.startswith("Resolved by opsplane: runbook service-down (run 3) ran unattended and "
                              "recovery was verified: alerts resolved (X)")
    assert "opsplane logs payments --since 10m" in cause


def test_the_loop_reads_the_runbook_an_alert_names_from_its_annotations() -> None:
    from opsplane.alerts.state import annotate
    from opsplane.runbooks.models import named_in

    rules = {(rule.name, rule.severity): rule for rule in builtin_rules(RulePack())}
    labels = {"service": "payments", "check": "errors"}
    # as the alert cycle renders them: the shipped runbook's command line names it
    assert named_in(annotate(rules[("CheckFailing", "P1")], labels, 3.0)) == "service-down"
    assert named_in(annotate(rules[("BackupFailed", "P1")], labels, 1.0)) is None  # a link to a page
    assert named_in({"runbook": "see the wiki"}) is None
    assert named_in({"runbook_url": "service-down"}) == "service-down"
