"""The rule state machine, driven by a manual clock: exact `for`, flapping, resolving,
keep_firing_for, and failures of the query engine."""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from datetime import datetime

import pytest

from opsplane.alerts.state import (
    RESOLVED_KEPT_AT_MOST,
    RESOLVED_REASON,
    RESOLVED_RETENTION,
    Alert,
    AlertState,
    DuplicateSeriesError,
    Sample,
    evaluate_rule,
    evaluate_rules,
    rule_id,
)
from opsplane.clock import ManualClock
from tests.alerts.factories import T0, rule

ORDERS = {"__name__": "error_ratio", "service": "orders", "env": "production"}


class RuleRun:
    """Evaluates one rule again and again, carrying its alerts forward like the control plane."""

    def __init__(self, **fields: object) -> None:
        self.rule = rule(**fields)
        self.clock = ManualClock(T0)
        self.alerts: dict[str, Alert] = {}
        self.transitions: list[tuple[str, str]] = []

    def step(self, samples: Sequence[Sample], seconds: float = 0, owed: Container[str] = ()) -> list[Alert]:
        self.clock.advance(seconds)
        result = evaluate_rule(self.rule, samples, self.alerts, self.clock.now(), owed)
        self.alerts = {a.fingerprint: a for a in result.alerts}
        self.transitions += [(t.before.value, t.after.value) for t in result.transitions]
        return result.alerts

    def state(self) -> AlertState:
        (alert,) = self.alerts.values()
        return alert.state


def test_pending_turns_firing_at_the_first_evaluation_exactly_for_later() -> None:
    run = RuleRun(**{"for": "5m"})
    run.step([(ORDERS, 0.05)])
    assert run.state() is AlertState.PENDING
    run.step([(ORDERS, 0.05)], 299.999)
    assert run.state() is AlertState.PENDING
    (alert,) = run.step([(ORDERS, 0.05)], 0.001)
    assert alert.state is AlertState.FIRING
    assert alert.fired_at == T0.replace(minute=5)
    assert alert.active_at == T0
    assert run.transitions == [("inactive", "pending"), ("pending", "firing")]


def test_a_rule_without_for_fires_at_its_first_evaluation() -> None:
    run = RuleRun()
    (alert,) = run.step([(ORDERS, 0.05)])
    assert alert.state is AlertState.FIRING and alert.fired_at == T0
    assert run.transitions == [("inactive", "firing")]


def test_a_flapping_condition_restarts_its_for_each_time_it_comes_back() -> None:
    run = RuleRun(**{"for": "1m"})
    run.step([(ORDERS, 0.05)])
    run.step([], 30)
    assert run.alerts == {}
    run.step([(ORDERS, 0.05)], 15)
    run.step([(ORDERS, 0.05)], 45)  # 90 s after the first activation, 45 s after this one
    assert run.state() is AlertState.PENDING
    run.step([(ORDERS, 0.05)], 15)
    assert run.state() is AlertState.FIRING
    assert run.transitions == [("inactive", "pending"), ("pending", "inactive"),
                               ("inactive", "pending"), ("pending", "firing")]


def test_a_firing_alert_resolves_when_its_series_disappears_and_is_kept_for_receivers() -> None:
    run = RuleRun()
    run.step([(ORDERS, 0.05)])
    (alert,) = run.step([], 15)
    assert alert.state is AlertState.RESOLVED and alert.resolved_at == run.clock.now()
    run.step([], RESOLVED_RETENTION.total_seconds() - 1)
    assert run.state() is AlertState.RESOLVED
    assert run.step([], 1) == []
    assert run.transitions == [("inactive", "firing"), ("firing", "resolved")]


def test_a_resolution_a_receiver_still_waits_for_keeps_the_alert_for_at_most_a_day() -> None:
    run = RuleRun()
    run.step([(ORDERS, 0.05)])
    (alert,) = run.step([], 15)
    owed = {alert.fingerprint}
    run.step([], RESOLVED_RETENTION.total_seconds(), owed)
    run.step([], RESOLVED_KEPT_AT_MOST.total_seconds() - RESOLVED_RETENTION.total_seconds() - 1, owed)
    assert run.state() is AlertState.RESOLVED
    assert run.step([], 1, owed) == []


def test_a_series_back_after_resolving_is_a_new_alert_that_waits_for_again() -> None:
    run = RuleRun(**{"for": "1m"})
    run.step([(ORDERS, 0.05)])
    run.step([(ORDERS, 0.05)], 60)
    run.step([], 15)
    (alert,) = run.step([(ORDERS, 0.05)], 15)
    assert alert.state is AlertState.PENDING and alert.active_at == run.clock.now()
    assert alert.fired_at is None and alert.resolved_at is None
    assert run.transitions[-1] == ("inactive", "pending")


def test_keep_firing_for_holds_a_firing_alert_after_its_series_goes() -> None:
    run = RuleRun(keep_firing_for="1m")
    run.step([(ORDERS, 0.05)])
    run.step([], 15)
    run.step([], 44)
    assert run.state() is AlertState.FIRING
    run.step([(ORDERS, 0.05)], 15)  # back: the hold starts again from the next disappearance
    run.step([], 15)
    run.step([], 59)
    assert run.state() is AlertState.FIRING
    run.step([], 1)
    assert run.state() is AlertState.RESOLVED


def test_labels_come_from_the_series_and_the_rule_and_annotations_are_rendered() -> None:
    run = RuleRun(
        labels={"team": "checkout", "env": "staging"},
        annotations={"summary": "{{ $labels.service }} fails {{ $value | humanizePercentage }}"},
        runbook="https://runbooks.example/errors",
    )
    (alert,) = run.step([(ORDERS, 0.0534)])
    assert alert.labels == {"service": "orders", "env": "staging", "team": "checkout",
                            "alertname": "HighErrorRate", "severity": "P1"}
    assert alert.annotations == {"summary": "orders fails 5.34%",
                                 "runbook_url": "https://runbooks.example/errors"}
    (alert,) = run.step([(ORDERS, 0.2)], 15)
    assert alert.value == 0.2 and alert.annotations["summary"] == "orders fails 20%"


def test_each_label_set_is_its_own_alert() -> None:
    run = RuleRun(**{"for": "1m"})
    payments = {**ORDERS, "service": "payments"}
    run.step([(ORDERS, 0.05)])
    alerts = run.step([(ORDERS, 0.05), (payments, 0.02)], 60)
    states = {a.labels["service"]: a.state for a in alerts}
    assert states == {"orders": AlertState.FIRING, "payments": AlertState.PENDING}


def test_series_that_collide_once_rule_labels_apply_are_an_error() -> None:
    with pytest.raises(DuplicateSeriesError, match="same labels"):
        evaluate_rule(rule(labels={"env": "x"}), [(ORDERS, 1.0), ({**ORDERS, "env": "y"}, 2.0)], {}, T0)


def _engine(results: Mapping[str, Sequence[Sample] | Exception]):
    def evaluate(expr: str, at: datetime) -> Sequence[Sample]:
        result = results[expr]
        if isinstance(result, Exception):
            raise result
        return result
    return evaluate


def test_a_failing_query_keeps_the_rules_alerts_as_they_were_and_reports_the_error() -> None:
    errors, down = rule("HighErrorRate"), rule("ServiceDown", severity="P0")
    first = evaluate_rules([errors, down], _engine({errors.expr: [(ORDERS, 0.05)], down.expr: []}), [], T0)
    broken = _engine({errors.expr: RuntimeError("window empty"), down.expr: [({"service": "x"}, 0.0)]})
    later = T0.replace(minute=1)
    second = evaluate_rules([errors, down], broken, first.alerts, later)
    assert second.errors == {rule_id(errors): "window empty"}
    assert [a.state for a in second.alerts if a.name == "HighErrorRate"] == [AlertState.FIRING]
    assert [(t.alert.name, t.after) for t in second.transitions] == [("ServiceDown", AlertState.FIRING)]


def test_a_rule_removed_from_the_inventory_resolves_its_firing_alerts_and_forgets_pending_ones() -> None:
    errors, slow = rule("HighErrorRate"), rule("SlowQueries", **{"for": "5m"})
    engine = _engine({errors.expr: [(ORDERS, 0.05)], slow.expr: [(ORDERS, 2.0)]})
    first = evaluate_rules([errors, slow], engine, [], T0)
    later = T0.replace(minute=1)
    second = evaluate_rules([], _engine({}), first.alerts, later)
    (resolved,) = second.alerts
    reason = 'rule HighErrorRate{severity="P1"} was removed from the configuration'
    assert resolved.state is AlertState.RESOLVED and resolved.resolved_at == later
    assert resolved.annotations[RESOLVED_REASON] == reason
    assert [(t.alert.name, t.after, t.reason) for t in second.transitions] == [
        ("HighErrorRate", AlertState.RESOLVED, reason),
        ("SlowQueries", AlertState.INACTIVE, reason.replace("HighErrorRate", "SlowQueries")),
    ]
    assert second.dropped == [a.fingerprint for a in first.alerts if a.name == "SlowQueries"]


def test_a_rule_whose_severity_changed_is_another_rule_and_one_whose_expression_changed_is_not() -> None:
    warning = rule("HighCpu", severity="P2", keep_firing_for="10m")
    first = evaluate_rules([warning], _engine({warning.expr: [(ORDERS, 0.8)]}), [], T0)
    critical = rule("HighCpu", severity="P1")
    second = evaluate_rules([critical], _engine({critical.expr: [(ORDERS, 0.8)]}), first.alerts, T0)
    assert sorted((a.labels["severity"], a.state.value) for a in second.alerts) == [("P1", "firing"),
                                                                                     ("P2", "resolved")]
    (why,) = [t.reason for t in second.transitions if t.after is AlertState.RESOLVED]
    assert why == 'rule HighCpu{severity="P2"} was changed; the configuration has HighCpu{severity="P1"} now'
    stricter = rule("HighCpu", severity="P1", expr="cpu > 0.9", annotations={"summary": "hot"})
    third = evaluate_rules([stricter], _engine({"cpu > 0.9": [(ORDERS, 0.95)]}), second.alerts, T0)
    kept = [a for a in third.alerts if a.labels["severity"] == "P1"]
    assert [(a.state, a.fired_at, a.annotations["summary"]) for a in kept] == [(AlertState.FIRING, T0, "hot")]
    assert third.transitions == []


def test_rule_ids_tell_warning_and_critical_levels_apart() -> None:
    assert rule_id(rule("HighCpu", severity="P2")) == 'HighCpu{severity="P2"}'
    critical = rule("HighCpu", severity="P1", labels={"team": "ops"})
    assert rule_id(critical) == 'HighCpu{severity="P1",team="ops"}'
