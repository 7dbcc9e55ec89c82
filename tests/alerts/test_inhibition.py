"""Inhibition by rules and by the inventory's depends_on, with the root cause named."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsplane.alerts.inhibition import dependents, inhibitions
from opsplane.alerts.models import InhibitRule, Route
from opsplane.alerts.routing import Muted, build_tree, due_notifications
from opsplane.alerts.state import AlertState
from tests.alerts.factories import T0, alert

SHOP = {"gateway": ["orders", "catalog"], "orders": ["payments", "postgres"], "payments": ["postgres"],
        "catalog": ["postgres", "redis"]}


def test_dependents_include_components_that_need_a_component_through_others() -> None:
    assert dependents(SHOP)["postgres"] == {"orders", "payments", "catalog", "gateway"}
    assert dependents(SHOP)["redis"] == {"catalog", "gateway"}
    assert "gateway" not in dependents(SHOP)


def _rule(source: list[str], target: list[str], equal: list[str] | None = None) -> InhibitRule:
    return InhibitRule.model_validate({"source_matchers": source, "target_matchers": target,
                                       "equal": equal or []})


CRITICAL_MUTES_WARNING = _rule(['severity="P0"'], ['severity="P2"'], ["service"])


@pytest.mark.parametrize(
    ("source", "target", "muted"),
    [
        (dict(severity="P0", service="orders"), dict(severity="P2", service="orders"), True),
        (dict(severity="P0", service="orders"), dict(severity="P2", service="payments"), False),
        (dict(severity="P1", service="orders"), dict(severity="P2", service="orders"), False),
        (dict(severity="P0"), dict(severity="P2"), True),  # equal on a missing label: both empty
        (dict(severity="P0", service="orders"), dict(severity="P3", service="orders"), False),
    ],
)
def test_inhibit_rules_need_a_firing_source_the_target_and_equal_labels(
    source: dict[str, str], target: dict[str, str], muted: bool
) -> None:
    cause = alert("Down", **source)
    victim = alert("Slow", **target)
    found = inhibitions([cause, victim], [CRITICAL_MUTES_WARNING])
    assert (victim.fingerprint in found) is muted
    assert cause.fingerprint not in found


def test_a_resolved_or_pending_alert_mutes_nothing() -> None:
    victim = alert("Slow", severity="P2", service="orders")
    for state in (AlertState.RESOLVED, AlertState.PENDING):
        cause = alert("Down", severity="P0", service="orders", state=state)
        assert inhibitions([cause, victim], [CRITICAL_MUTES_WARNING]) == {}


def test_alerts_matching_both_sides_do_not_mute_each_other() -> None:
    rule = _rule(['alertname="Down"'], ['alertname="Down"'])
    first, second = alert("Down", service="a"), alert("Down", service="b")
    assert inhibitions([first, second], [rule]) == {}


def test_a_down_database_mutes_its_dependents_in_the_same_environment_and_is_their_root_cause() -> None:
    database = alert("DatabaseDown", severity="P0", service="postgres", env="production")
    orders = alert("HighErrorRate", service="orders", env="production")
    gateway = alert("HighErrorRate", service="gateway", env="production")
    payments_staging = alert("HighErrorRate", service="payments", env="staging")
    found = inhibitions([database, orders, gateway, payments_staging], depends_on=SHOP)
    assert set(found) == {orders.fingerprint, gateway.fingerprint}
    assert {i.cause.fingerprint for i in found.values()} == {database.fingerprint}
    assert {i.reason for i in found.values()} == {"depends_on"}


def test_the_root_cause_is_the_alert_furthest_down_the_dependency_chain() -> None:
    database = alert("DatabaseDown", severity="P0", service="postgres")
    payments = alert("ServiceDown", severity="P0", service="payments")
    orders = alert("HighErrorRate", service="orders")
    found = inhibitions([orders, payments, database], depends_on=SHOP)
    assert found[orders.fingerprint].cause == database
    assert found[payments.fingerprint].cause == database


def test_the_page_about_the_root_cause_names_what_it_explains() -> None:
    tree = build_tree(Route.model_validate({"receiver": "pager", "group_by": ["alertname"]}))
    database = alert("DatabaseDown", severity="P0", service="postgres")
    orders = alert("HighErrorRate", service="orders")
    found = inhibitions([database, orders], depends_on=SHOP)
    (page,) = due_notifications([database, orders], tree=tree, sent={}, now=T0 + timedelta(minutes=1),
                                muted=Muted({}, found))
    assert [a.name for a in page.firing] == ["DatabaseDown"]
    assert [(i.target.labels["service"], i.cause.name) for i in page.explains] == [("orders", "DatabaseDown")]


def test_dependents_stay_muted_for_the_hold_after_their_cause_resolves() -> None:
    # orders' error ratio still covers the minutes the database was down when the database
    # alert resolves; paging for it then would be a second page for the same fault.
    resolved_at = T0 + timedelta(minutes=10)
    database = alert("DatabaseDown", state=AlertState.RESOLVED, at=resolved_at, severity="P0",
                     service="postgres")
    orders = alert("HighErrorRate", service="orders")

    def muted_at(minutes_after: float, hold: float = 300.0) -> bool:
        now = resolved_at + timedelta(minutes=minutes_after)
        return orders.fingerprint in inhibitions([database, orders], depends_on=SHOP, now=now, hold=hold)

    assert muted_at(1) and muted_at(4.9)
    assert not muted_at(5) and not muted_at(6)
    assert not muted_at(1, hold=0.0)
    found = inhibitions([database, orders], depends_on=SHOP, now=resolved_at + timedelta(minutes=1), hold=300)
    assert found[orders.fingerprint].cause == database


def test_a_firing_cause_is_named_before_a_resolved_one() -> None:
    resolved = alert("DatabaseDown", state=AlertState.RESOLVED, severity="P0", service="postgres")
    payments = alert("ServiceDown", severity="P1", service="payments")
    orders = alert("HighErrorRate", service="orders")
    found = inhibitions([resolved, payments, orders], depends_on={"orders": ["payments", "postgres"]},
                        now=T0 + timedelta(minutes=1), hold=300)
    assert found[orders.fingerprint].cause == payments
