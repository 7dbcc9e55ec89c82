"""`opsplane slo list|status|report` over a real store: states with their exit codes (spent 2,
low or burning 1, fine 0), a usage error for an unknown SLO or month, and the monthly review
with achieved against objective, worst days and the service's incidents."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsplane.incidents import service as incidents
from opsplane.incidents.models import IncidentsSettings
from opsplane.slo import service
from opsplane.slo.tables import SloHourRow
from opsplane.store import Store
from tests.support.cli import Opsplane

pytestmark = pytest.mark.slow

EVENTS = {"bad": 'http_requests_total{service="gateway",status=~"5.."}',
          "total": 'http_requests_total{service="gateway"}'}


@pytest.fixture
def opsplane(tmp_path: Path) -> Opsplane:
    return Opsplane(tmp_path, {
        "platform": {"name": "shop"},
        "services": {"gateway": {"port": 8080, "metrics_path": "/metrics"},
                     "payments": {"port": 8081, "metrics_path": "/metrics"}},
        "slos": {
            "gateway-availability": {"service": "gateway", "objective": "99%", "window": "1d",
                                     "sli": {"events": EVENTS}},
            "payments-availability": {"service": "payments", "objective": "99%", "window": "1d",
                                      "sli": {"events": EVENTS}},
            "gateway-monthly": {"service": "gateway", "objective": "99.9%",
                                "calendar": {"unit": "month", "timezone": "Europe/Berlin"},
                                "sli": {"events": EVENTS}},
        },
    })


def record_day(opsplane: Opsplane, slo: str, bad_per_minute: float) -> None:
    """The last day of `slo`, 100 events a minute, `bad_per_minute` of them bad."""
    now = datetime.now(UTC)
    first = int(now.timestamp()) // 60 - 1440
    store = Store.open(opsplane.env["OPSPLANE_DATABASE_URL"])
    with store.session() as session:
        for m in range(first, first + 1440):
            service.record(session, slo=slo, minute=m, good=100.0 - bad_per_minute, total=100.0)
    store.close()


def test_status_says_which_budget_is_spent_and_exits_by_the_worst(opsplane: Opsplane) -> None:
    record_day(opsplane, "gateway-availability", 2.0)  # 2 % failing against a 1 % budget
    record_day(opsplane, "payments-availability", 0.8)  # 80 % of the budget used
    ran = opsplane("slo", "status", code=2)
    assert "gateway-availability: error budget spent: 200% of it used, 100% over" in ran.stdout
    assert "payments-availability: only 20% of the error budget left" in ran.stdout
    ran = opsplane("slo", "status", "payments-availability", "--json", code=1)
    [payments] = json.loads(ran.stdout)
    assert payments["state"] == "warning" and payments["budget_remaining"] == pytest.approx(0.2)
    assert payments["burn_rates"]["1d"] == pytest.approx(0.8)
    ran = opsplane("slo", "status", "gateway-monthly", code=0)  # nothing recorded: unknown, no alarm
    assert "no events in the window yet" in ran.stdout


def test_an_unknown_slo_or_month_is_a_usage_error(opsplane: Opsplane) -> None:
    ran = opsplane("slo", "status", "checkout", code=3)
    assert "no SLO named 'checkout'" in ran.stderr and "gateway-availability" in ran.stderr
    ran = opsplane("slo", "report", "--month", "2026-13", code=3)
    assert "give it as YYYY-MM" in ran.stderr


def test_list_shows_each_slos_window(opsplane: Opsplane) -> None:
    listed = opsplane.json("slo", "list")
    assert [(s["name"], s["window"]) for s in listed] == [
        ("gateway-availability", "rolling 1d"), ("payments-availability", "rolling 1d"),
        ("gateway-monthly", "calendar month (Europe/Berlin)")]


def test_the_monthly_review_takes_the_month_in_the_slos_zone(opsplane: Opsplane) -> None:
    store = Store.open(opsplane.env["OPSPLANE_DATABASE_URL"])
    # November 2026 in Berlin: 31 October 23:00 UTC to 30 November 23:00 UTC
    start = datetime(2026, 10, 31, 23, tzinfo=UTC)
    with store.session() as session:
        for h in range(-2, 30 * 24 + 2):  # an hour more on each side, outside the month
            bad = 600.0 if h in (100, 101) else 6.0 if h in range(-2, 0) or h >= 720 else 0.0
            session.add(SloHourRow(slo="gateway-monthly", at=start + timedelta(hours=h), good=6000.0 - bad,
                                   total=6000.0, slices=0, bad_slices=0, minutes=60))
        incidents.create(session, title="Checkout returns 502", service="gateway", severity="P2",
                         actor="cli:ana", now=start + timedelta(hours=100, minutes=5),
                         settings=IncidentsSettings())
    store.close()
    review = opsplane.json("slo", "report", "--month", "2026-11")
    [monthly] = [s for s in review["slos"] if s["name"] == "gateway-monthly"]
    assert monthly["events"] == 720 * 6000.0
    assert monthly["achieved"] == pytest.approx(1 - 1200 / (720 * 6000))
    assert monthly["met"] is True and monthly["budget_used"] == pytest.approx(1200 / (720 * 6000) / 0.001)
    assert [d["day"] for d in monthly["worst_days"]] == ["2026-11-05"]  # hour 100: 5 November, 04:00 CET
    assert [i["title"] for i in monthly["incidents"]] == ["Checkout returns 502"]
    page = opsplane("slo", "report", "--month", "2026-11", "--markdown").stdout
    assert "| gateway-monthly | gateway | 99.9 % | 99.972 % | 28% | yes |" in page
    assert "#1 P2 Checkout returns 502" in page
