"""Maintenance windows: silences by calendar, in the window's own time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsplane.alerts.models import MaintenanceWindow, Route
from opsplane.alerts.routing import build_tree, due_notifications, mute
from opsplane.config import loads
from opsplane.errors import ConfigError
from tests.alerts.factories import alert

# Sunday 02:00 to 04:00 in Berlin: 01:00-03:00 UTC in winter, 00:00-02:00 UTC in summer.
SUNDAY_NIGHT = MaintenanceWindow.model_validate({
    "matchers": ['service="orders"'], "days": ["sun"], "start": "02:00", "duration": "2h",
    "timezone": "Europe/Berlin",
})


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        (datetime(2026, 1, 4, 0, 59, tzinfo=UTC), False),  # Sunday, 01:59 in Berlin
        (datetime(2026, 1, 4, 1, 0, tzinfo=UTC), True),
        (datetime(2026, 1, 4, 2, 59, tzinfo=UTC), True),
        (datetime(2026, 1, 4, 3, 0, tzinfo=UTC), False),
        (datetime(2026, 1, 5, 1, 30, tzinfo=UTC), False),  # a Monday
        (datetime(2026, 7, 5, 0, 30, tzinfo=UTC), True),  # summer time
        (datetime(2026, 7, 5, 2, 30, tzinfo=UTC), False),
    ],
)
def test_a_window_opens_on_its_days_at_its_local_time(when: datetime, open_: bool) -> None:
    assert SUNDAY_NIGHT.is_open(when) is open_


def test_a_window_running_past_midnight_is_still_open_the_next_day() -> None:
    weekend = MaintenanceWindow.model_validate({
        "matchers": ['env="staging"'], "days": ["sat"], "start": "22:00", "duration": "36h"})
    assert weekend.is_open(datetime(2026, 1, 4, 9, 0, tzinfo=UTC))  # Sunday morning
    assert not weekend.is_open(datetime(2026, 1, 5, 10, 0, tzinfo=UTC))  # Monday 10:00


def test_alerts_in_an_open_window_are_not_notified_and_others_are() -> None:
    now = datetime(2026, 1, 4, 1, 30, tzinfo=UTC)
    fired = now - timedelta(hours=1)
    orders, payments = alert(service="orders", at=fired), alert(service="payments", at=fired)
    tree = build_tree(Route(receiver="ops"))
    muted = mute([orders, payments], silences=[], inhibited={}, now=now, windows={"sunday": SUNDAY_NIGHT})
    assert muted.in_maintenance == {orders.fingerprint: ["sunday"]}
    (sent,) = due_notifications([orders, payments], tree=tree, sent={}, now=now, muted=muted)
    assert [a.labels["service"] for a in sent.firing] == ["payments"]


@pytest.mark.parametrize(
    ("window", "problem"),
    [
        ("{matchers: ['service=\"x\"'], start: '02:00', duration: 2h, timezone: Mars/Olympus}",
         "unknown time zone"),
        ("{matchers: ['service=\"x\"'], start: '02:00', duration: 8d}", "at most 7d"),
        ("{matchers: ['service=\"x\"'], start: '02:00', duration: 1h, days: [sunday]}", "days[0]"),
        ("{matchers: [], start: '02:00', duration: 1h}", "matchers"),
    ],
)
def test_bad_windows_are_refused_when_the_inventory_loads(window: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        loads(f"platform: {{name: shop}}\nalerting:\n  maintenance_windows:\n    nightly: {window}\n")
    assert problem in str(caught.value)
