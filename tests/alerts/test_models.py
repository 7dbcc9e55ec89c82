"""The `alerting:` section: what an operator may write and what is refused, with the place."""

from __future__ import annotations

import textwrap

import pytest

from opsplane.alerts.matchers import MatchOp, parse_matcher
from opsplane.alerts.models import AlertingSettings, Severity
from opsplane.config import loads
from opsplane.errors import ConfigError


def _inventory(alerting: str) -> str:
    return "platform: {name: shop}\nalerting:\n" + textwrap.indent(textwrap.dedent(alerting), "  ")


def _problems(alerting: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loads(_inventory(alerting), "opsplane.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_a_rule_with_for_severity_labels_and_templates_loads() -> None:
    inventory = loads(_inventory("""
        rules:
          - name: HighErrorRate
            expr: sum by (service) (rate(http_requests_total{code=~"5.."}[5m])) > 0.01
            for: 5m
            severity: P1
            labels: {team: checkout}
            annotations:
              summary: "{{ $labels.service }} fails {{ $value | humanizePercentage }} of requests"
            runbook: https://runbooks.example/high-error-rate
    """))
    rule = inventory.alerting.rules[0]
    assert rule.for_ == 300.0
    assert rule.severity is Severity.P1
    assert rule.static_labels() == {"team": "checkout", "alertname": "HighErrorRate", "severity": "P1"}


def test_defaults_are_alertmanagers_and_send_everything_to_the_default_receiver() -> None:
    settings = AlertingSettings()
    assert settings.route.receiver == "default"
    assert list(settings.receivers) == ["default"]
    assert settings.evaluation_interval == 15.0
    assert settings.inhibit_dependents is True


def test_an_unknown_severity_is_refused_at_its_line() -> None:
    problems = _problems("""
        rules:
          - {name: Down, expr: up == 0, severity: P5}
    """)
    assert len(problems) == 1
    assert problems[0].startswith("opsplane.yaml:5:")
    assert "alerting.rules[0].severity" in problems[0]
    assert "'P5'" in problems[0]


def test_a_template_with_an_unknown_function_names_it() -> None:
    (problem,) = _problems("""
        rules:
          - name: Down
            expr: up == 0
            severity: P0
            annotations: {summary: "{{ $value | shout }}"}
    """)
    assert "annotations.summary" in problem and "unknown function 'shout'" in problem


def test_a_template_reaching_outside_labels_and_value_is_refused() -> None:
    (problem,) = _problems("""
        rules:
          - {name: Down, expr: up == 0, severity: P0, annotations: {summary: "{{ .Env.HOME }}"}}
    """)
    assert "only $value and $labels.<name>" in problem


def test_a_route_naming_an_undefined_receiver_is_refused() -> None:
    (problem,) = _problems("""
        route:
          receiver: default
          routes: [{receiver: pager, matchers: ['severity="P0"']}]
    """)
    assert "receiver 'pager'" in problem and "defined: default" in problem


def test_rules_that_would_make_indistinguishable_alerts_are_refused() -> None:
    (problem,) = _problems("""
        rules:
          - {name: Down, expr: up == 0, severity: P0}
          - {name: Down, expr: absent(up), severity: P0}
    """)
    assert "two rules named Down" in problem


def test_the_same_name_at_warning_and_critical_severities_is_allowed() -> None:
    inventory = loads(_inventory("""
        rules:
          - {name: HighCpu, expr: cpu > 0.75, severity: P2}
          - {name: HighCpu, expr: cpu > 0.90, severity: P1}
    """))
    assert [r.severity for r in inventory.alerting.rules] == [Severity.P2, Severity.P1]


def test_a_rule_may_not_set_severity_through_labels() -> None:
    (problem,) = _problems("""
        rules:
          - {name: Down, expr: up == 0, severity: P0, labels: {severity: P3}}
    """)
    assert "label 'severity' is set by opsplane" in problem


def test_a_bad_matcher_is_refused_with_the_expected_form() -> None:
    (problem,) = _problems("""
        inhibit_rules:
          - {source_matchers: ['severity is P0'], target_matchers: ['severity="P2"']}
    """)
    assert "cannot read matcher 'severity is P0'" in problem


def test_a_bad_regular_expression_in_a_matcher_is_refused() -> None:
    (problem,) = _problems("""
        route: {receiver: default, routes: [{matchers: ['service=~"(orders"']}]}
    """)
    assert "invalid regular expression" in problem


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('severity="P0"', "severity", MatchOp.EQUAL, "P0"),
        ("team!=payments", "team", MatchOp.NOT_EQUAL, "payments"),
        ('service=~"orders|payments"', "service", MatchOp.REGEX, "orders|payments"),
        (' env !~ "stag.*" ', "env", MatchOp.NOT_REGEX, "stag.*"),
        ('summary="say \\"hi\\""', "summary", MatchOp.EQUAL, 'say "hi"'),
    ],
)
def test_matchers_read_every_operator(text: str, name: str, op: MatchOp, value: str) -> None:
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)
    assert parse_matcher(str(matcher)) == matcher


def test_regex_matchers_match_the_whole_value_and_missing_labels_read_empty() -> None:
    assert parse_matcher('service=~"order"').matches({"service": "orders"}) is False
    assert parse_matcher('service=~"orders?"').matches({"service": "orders"}) is True
    assert parse_matcher('team!="payments"').matches({}) is True
    assert parse_matcher('team=""').matches({}) is True
    assert parse_matcher('team!~".+"').matches({"team": "x"}) is False
