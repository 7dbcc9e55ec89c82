"""Cross-checks the inventory loader runs on the alerting section."""

from __future__ import annotations

from opsplane.alerts.checks import expression_problems, label_problems
from opsplane.alerts.models import AlertingSettings
from opsplane.errors import UsageError


class Refused(ValueError):
    def __init__(self, message: str, construct: str) -> None:
        super().__init__(message)
        self.construct = construct


def _parse(expr: str) -> object:
    """A stand-in parser: refuses subqueries by construct and unbalanced parentheses."""
    if "[5m:" in expr:
        raise Refused("subqueries are not supported", "subquery")
    if expr.count("(") != expr.count(")"):
        raise UsageError(f"unbalanced parentheses in {expr!r}")
    return expr


SETTINGS = AlertingSettings.model_validate({"rules": [
    {"name": "Fine", "expr": "sum(rate(x[5m])) > 1", "severity": "P2"},
    {"name": "Sub", "expr": "max_over_time(rate(x[1m])[5m:1m]) > 1", "severity": "P2"},
    {"name": "Broken", "expr": "sum(rate(x[5m]) > 1", "severity": "P1", "labels": {"service": "ordres"}},
]})


def test_each_refused_expression_is_a_problem_at_its_rule_naming_the_construct() -> None:
    problems = expression_problems(SETTINGS, _parse)
    assert problems == [
        (("alerting", "rules", 1, "expr"), "rule Sub: subqueries are not supported (unsupported: subquery)"),
        (("alerting", "rules", 2, "expr"),
         "rule Broken: unbalanced parentheses in 'sum(rate(x[5m]) > 1'"),
    ]


def test_a_service_label_naming_no_component_is_a_problem() -> None:
    (problem,) = label_problems(SETTINGS, ["orders", "payments"])
    assert problem == (("alerting", "rules", 2, "labels", "service"),
                       "unknown component 'ordres'; expected one of orders, payments")
