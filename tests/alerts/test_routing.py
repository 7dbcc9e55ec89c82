"""Routing: the tree walk, grouping and the group_wait / group_interval / repeat_interval
timers, checked against tables of cases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsplane.alerts.models import Route
from opsplane.alerts.routing import (
    Muted,
    Notification,
    SentNotification,
    build_tree,
    due_notifications,
    group_alerts,
    match_routes,
    owed_resolutions,
)
from opsplane.alerts.state import Alert, AlertState
from tests.alerts.factories import T0, alert

TREE = build_tree(Route.model_validate({
    "receiver": "email",
    "group_by": ["alertname"],
    "routes": [
        {"matchers": ['severity="P0"'], "receiver": "pager", "group_wait": "10s", "continue": True,
         "routes": [{"matchers": ['team="payments"'], "receiver": "payments-pager"}]},
        {"matchers": ['severity=~"P0|P1"'], "receiver": "slack", "group_by": ["alertname", "service"]},
        {"matchers": ['env="staging"'], "receiver": "staging"},
        {"matchers": ['severity="P3"'], "receiver": "digest", "group_by": ["..."],
         "repeat_interval": "1d"},
    ],
}))


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"severity": "P0", "service": "orders"}, ["pager", "slack"]),
        ({"severity": "P0", "team": "payments"}, ["payments-pager", "slack"]),
        ({"severity": "P1", "env": "staging"}, ["slack"]),
        ({"severity": "P2", "env": "staging"}, ["staging"]),
        ({"severity": "P2", "env": "production"}, ["email"]),
        ({"severity": "P3"}, ["digest"]),
        ({}, ["email"]),
    ],
)
def test_an_alert_takes_the_first_matching_route_and_continues_only_when_told(
    labels: dict[str, str], receivers: list[str]
) -> None:
    assert [r.receiver for r in match_routes(TREE, labels)] == receivers


def test_children_inherit_unset_settings_and_defaults_are_alertmanagers() -> None:
    pager, slack, staging, digest = TREE.children
    (payments,) = pager.children
    assert (TREE.group_wait, TREE.group_interval, TREE.repeat_interval) == (30, 300, 4 * 3600)
    inherited = (payments.group_wait, payments.group_by, payments.repeat_interval)
    assert inherited == (10, ("alertname",), 4 * 3600)
    assert slack.group_by == ("alertname", "service")
    assert digest.repeat_interval == 86400 and staging.receiver == "staging"


def test_alerts_are_grouped_by_route_and_group_by_values() -> None:
    alerts = [
        alert("HighErrorRate", service="orders"),
        alert("HighErrorRate", service="payments"),
        alert("HighLatency", service="orders", severity="P2"),
        alert("HighLatency", service="search", severity="P2"),
    ]
    groups = {(g.route.receiver, tuple(g.labels.items())): len(g.alerts) for g in group_alerts(TREE, alerts)}
    assert groups == {
        ("slack", (("alertname", "HighErrorRate"), ("service", "orders"))): 1,
        ("slack", (("alertname", "HighErrorRate"), ("service", "payments"))): 1,
        ("email", (("alertname", "HighLatency"),)): 2,
    }


def test_group_by_everything_puts_each_label_set_in_its_own_group() -> None:
    alerts = [alert("Backlog", severity="P3", queue="a"), alert("Backlog", severity="P3", queue="b")]
    assert len(group_alerts(TREE, alerts)) == 2


SIMPLE = build_tree(Route.model_validate({
    "receiver": "ops", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m",
    "repeat_interval": "4h",
}))


class Notifier:
    """Sends what is due at each moment and keeps the notification log, as the control plane does."""

    def __init__(self, send_resolved: bool = True) -> None:
        self.log: dict[tuple[str, str], SentNotification] = {}
        self.send_resolved = send_resolved

    def at(self, seconds: float, alerts: list[Alert], muted: Muted | None = None) -> list[Notification]:
        now = T0 + timedelta(seconds=seconds)
        due = due_notifications(alerts, tree=SIMPLE, sent=self.log, now=now, muted=muted,
                                send_resolved={"ops": self.send_resolved})
        for notification in due:
            self.log[(notification.receiver, notification.group_id)] = notification.record(now)
        return due


def _shown(notifications: list[Notification]) -> list[tuple[list[str], list[str]]]:
    def services(alerts: tuple[Alert, ...]) -> list[str]:
        return [a.labels.get("service", "") for a in alerts]

    return [(services(n.firing), services(n.resolved)) for n in notifications]


def test_a_new_group_waits_group_wait_then_collects_what_joined_meanwhile() -> None:
    notifier = Notifier()
    orders = alert(service="orders")
    assert notifier.at(29, [orders]) == []
    payments = alert(service="payments", at=T0 + timedelta(seconds=20))
    assert _shown(notifier.at(30, [orders, payments])) == [(["orders", "payments"], [])]


def test_an_unchanged_group_is_repeated_after_repeat_interval_only() -> None:
    notifier = Notifier()
    orders = alert(service="orders")
    notifier.at(30, [orders])
    assert notifier.at(30 + 4 * 3600 - 1, [orders]) == []
    assert _shown(notifier.at(30 + 4 * 3600, [orders])) == [(["orders"], [])]


def test_a_changed_group_is_notified_after_group_interval() -> None:
    notifier = Notifier()
    orders = alert(service="orders")
    notifier.at(30, [orders])
    payments = alert(service="payments", at=T0 + timedelta(seconds=60))
    assert notifier.at(329, [orders, payments]) == []
    assert _shown(notifier.at(330, [orders, payments])) == [(["orders", "payments"], [])]


def test_silencing_one_alert_of_a_notified_group_is_no_news_for_the_others() -> None:
    notifier = Notifier()
    orders, payments = alert(service="orders"), alert(service="payments")
    notifier.at(30, [orders, payments])
    silence = Muted(silenced={payments.fingerprint: [3]}, inhibited={})
    assert notifier.at(330, [orders, payments], silence) == []
    assert _shown(notifier.at(30 + 4 * 3600, [orders, payments], silence)) == [(["orders"], [])]
    # the silence ends: payments is news again for a receiver last told only of orders
    assert _shown(notifier.at(30 + 4 * 3600 + 300, [orders, payments])) == [(["orders", "payments"], [])]


def test_a_resolution_the_receiver_does_not_want_is_no_news_for_the_others() -> None:
    notifier = Notifier(send_resolved=False)
    orders, payments = alert(service="orders"), alert(service="payments")
    notifier.at(30, [orders, payments])
    over = alert(service="payments", state=AlertState.RESOLVED, at=T0 + timedelta(seconds=60))
    assert notifier.at(330, [orders, over]) == []
    assert _shown(notifier.at(30 + 4 * 3600, [orders, over])) == [(["orders"], [])]


def test_an_alert_that_fired_again_since_the_last_notification_is_news() -> None:
    notifier = Notifier(send_resolved=False)
    notifier.at(30, [alert(service="orders"), alert(service="payments")])
    again = alert(service="payments", at=T0 + timedelta(seconds=900))
    assert _shown(notifier.at(900, [alert(service="orders"), again])) == [(["orders", "payments"], [])]


def test_a_resolution_is_owed_to_receivers_told_it_fired_that_want_resolutions() -> None:
    notifier = Notifier()
    orders, payments = alert(service="orders"), alert(service="payments", at=T0 + timedelta(seconds=60))
    notifier.at(30, [orders])
    over = [alert(service=name, state=AlertState.RESOLVED, at=T0 + timedelta(seconds=90))
            for name in ("orders", "payments")]
    assert owed_resolutions(over, tree=SIMPLE, sent=notifier.log) == {orders.fingerprint}
    assert owed_resolutions(over, tree=SIMPLE, sent=notifier.log, send_resolved={"ops": False}) == set()
    notifier.at(330, over)
    assert owed_resolutions(over, tree=SIMPLE, sent=notifier.log) == set()
    assert payments.fingerprint == over[1].fingerprint  # resolved before any notification: owed to none


def test_a_resolved_alert_is_notified_once_and_only_if_it_was_notified_firing() -> None:
    notifier = Notifier()
    orders = alert(service="orders")
    notifier.at(30, [orders])
    gone = alert(service="orders", state=AlertState.RESOLVED, at=T0 + timedelta(seconds=60))
    assert _shown(notifier.at(330, [gone])) == [([], ["orders"])]
    assert notifier.at(10_000, [gone]) == []
    never_told = Notifier()
    assert never_told.at(30, [alert(service="x", state=AlertState.RESOLVED)]) == []


def test_a_receiver_that_does_not_want_resolutions_does_not_get_them() -> None:
    notifier = Notifier(send_resolved=False)
    notifier.at(30, [alert(service="orders")])
    assert notifier.at(400, [alert(service="orders", state=AlertState.RESOLVED)]) == []


def test_a_group_whose_alerts_all_resolved_starts_again_with_group_wait() -> None:
    notifier = Notifier()
    notifier.at(30, [alert(service="orders")])
    notifier.at(330, [alert(service="orders", state=AlertState.RESOLVED)])
    again = alert(service="orders", at=T0 + timedelta(seconds=1000))
    assert notifier.at(1029, [again]) == []
    assert _shown(notifier.at(1030, [again])) == [(["orders"], [])]


def test_pending_silenced_and_inhibited_alerts_are_not_notified() -> None:
    notifier = Notifier()
    pending = alert(service="pending", state=AlertState.PENDING)
    silenced = alert(service="silenced")
    shown = alert(service="shown")
    muted = Muted(silenced={silenced.fingerprint: [1]}, inhibited={})
    assert _shown(notifier.at(30, [pending, silenced, shown], muted)) == [(["shown"], [])]


def test_a_page_silenced_after_it_was_sent_still_gets_its_resolution() -> None:
    # Whoever was paged must hear that it is over, or their pager keeps an open incident.
    notifier = Notifier()
    orders = alert(service="orders")
    assert _shown(notifier.at(30, [orders])) == [(["orders"], [])]
    silence = Muted(silenced={orders.fingerprint: [7]}, inhibited={})
    assert notifier.at(400, [orders], silence) == []  # silenced while firing: nothing new to say
    gone = alert(service="orders", state=AlertState.RESOLVED, at=T0 + timedelta(seconds=500))
    assert _shown(notifier.at(800, [gone], silence)) == [([], ["orders"])]
    never_paged = alert(service="payments")
    quiet = Muted(silenced={never_paged.fingerprint: [8]}, inhibited={})
    notifier.at(900, [never_paged], quiet)
    over = alert(service="payments", state=AlertState.RESOLVED, at=T0 + timedelta(seconds=950))
    assert notifier.at(2000, [over], quiet) == []  # never told it fired: no resolution either


def test_the_notification_log_makes_a_restart_send_nothing_twice() -> None:
    notifier = Notifier()
    orders = alert(service="orders")
    notifier.at(30, [orders])
    restarted = Notifier()
    restarted.log = dict(notifier.log)
    assert restarted.at(60, [orders]) == []
