"""The SLO pages through HTTP with a real store (SQLite and PostgreSQL): every SLO's SLI, budget
left, burn rates and state, one SLO's burn-down (its last point the budget left), SLI per day,
burn rates against the alerts' factors, the burn alerts firing, the deploy gate and last
month's review, and a service's SLOs on its page. Minutes and hours are written with the SLO
service's `record`, alerts with the alert service, on the plane's ManualClock."""

from __future__ import annotations

import html as entities
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from opsplane.alerts import service as alerts
from opsplane.alerts.state import Alert, AlertState, fingerprint, rule_id
from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.incidents import service as incidents
from opsplane.server import ControlPlane, create_app
from opsplane.slo import service
from opsplane.slo.rules import slo_rules
from opsplane.store import Store
from tests.web.conftest import make_token

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)  # a Thursday, on the hour
INVENTORY = """
platform: {name: shop}
services:
  gateway: {port: 8000, metrics_path: /metrics, checks: [{type: http, path: /health}]}
  catalog: {port: 8001, checks: [{type: http, path: /health}]}
caches:
  sessions: {port: 6379, checks: [{type: redis}]}
databases:
  postgres: {port: 5432}
slos:
  gateway-availability:
    service: gateway
    description: "<b>edge</b> requests & their errors"
    objective: 99%
    window: 7d
    sli: {events: {bad: 'http_requests_total{status=~"5.."}', total: http_requests_total}}
  gateway-latency:
    service: gateway
    objective: 99%
    calendar: {unit: month}
    sli: {latency: {histogram: 'http_request_duration_seconds{service="gateway"}', threshold: 300ms}}
    deploy_gate: false
  catalog-checks:
    service: catalog
    objective: 99%
    window: 1d
    sli: {checks: {}}
  sessions-up:
    service: sessions
    objective: 99.5%
    sli: {checks: {}}
"""
PAGES = ["/ui/slos", "/ui/slos/gateway-availability"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def plane(store: Store, clock: ManualClock) -> Iterator[ControlPlane]:
    yield ControlPlane(loads(INVENTORY), store, clock=clock)


@pytest.fixture
def client(plane: ControlPlane) -> TestClient:
    return TestClient(create_app(plane), follow_redirects=False)


def signed_in(client: TestClient, plane: ControlPlane) -> TestClient:
    answer = client.post("/ui/login", data={"token": make_token(plane, Role.VIEWER, name="viewer-slo")})
    assert answer.status_code == 303, answer.text
    return client


def hourly(plane: ControlPlane, slo: str, since: datetime, hours: int, *, good: float, total: float) -> None:
    """One recorded minute at the start of each hour from `since`, holding the hour's events."""
    first = int(since.timestamp()) // 60
    with plane.store.session() as session:
        for h in range(hours):
            assert service.record(session, slo=slo, minute=first + 60 * h, good=good, total=total)


def minutely(plane: ControlPlane, slo: str, since: datetime, minutes: int, *, good: float, total: float
             ) -> None:
    first = int(since.timestamp()) // 60
    with plane.store.session() as session:
        for m in range(minutes):
            assert service.record(session, slo=slo, minute=first + m, good=good, total=total)


@pytest.fixture
def recorded(plane: ControlPlane) -> None:
    """gateway-availability (7 d, 99%): a clean week, then 3.5 days at 1% bad, then 3.5 clean
    days: half its budget spent. gateway-latency (December, 99%): clean hours, then the last
    2 hours at 20% slow, minute by minute: burning fast, its page alert firing. catalog-checks
    (1 d, 99%): 2% of its checks failed all day: budget spent twice over, deploys held.
    sessions-up: nothing recorded."""
    hourly(plane, "gateway-availability", NOW - timedelta(days=14), 7 * 24, good=1000.0, total=1000.0)
    hourly(plane, "gateway-availability", NOW - timedelta(days=7), 84, good=990.0, total=1000.0)
    hourly(plane, "gateway-availability", NOW - timedelta(hours=84), 84, good=1000.0, total=1000.0)
    start = datetime(2026, 12, 1, tzinfo=UTC)
    hourly(plane, "gateway-latency", start, 9 * 24 + 10, good=100_000.0, total=100_000.0)
    minutely(plane, "gateway-latency", NOW - timedelta(hours=2), 120, good=80.0, total=100.0)
    hourly(plane, "catalog-checks", NOW - timedelta(days=2), 48, good=98.0, total=100.0)
    with plane.store.session() as session:
        checks = {"catalog-checks": plane.inventory.slos["catalog-checks"]}
        [spent] = service.statuses(session, checks, now=NOW)
        service.record_budget_change(session, spent, exhausted=True, now=NOW - timedelta(hours=1))
        incidents.create(session, title="gateway 5xx", service="gateway", severity="P2", actor="test",
                         now=datetime(2026, 11, 28, 9, tzinfo=UTC), settings=plane.inventory.incidents)
        [page_rule] = [r for r in slo_rules(plane.inventory.slos)
                       if r.name == "SLOFastBurn" and r.labels.get("slo") == "gateway-latency"]
        labels = {"alertname": "SLOFastBurn", "severity": "P1", "slo": "gateway-latency",
                  "service": "gateway"}
        alerts.save_changes(session, stored={}, dropped=[], now=NOW, alerts=[Alert(
            fingerprint=fingerprint(labels), rule=rule_id(page_rule), labels=labels, state=AlertState.FIRING,
            value=0.62, annotations={"summary": "SLO gateway-latency of gateway burns its error budget fast"},
            active_at=NOW - timedelta(minutes=20), last_seen_at=NOW, fired_at=NOW - timedelta(minutes=18))])


def text(html: str) -> str:
    """The page's words, tags dropped, entities read and spaces squeezed."""
    words = re.sub(r"\s+([,.;:)])", r"\1", re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))
    return entities.unescape(words)


def row(html: str, slo: str) -> str:
    found = re.search(rf'<tr class="row [^"]*" data-slo="{slo}".*?</tr>', html, re.S)
    assert found, slo
    return found.group(0)


def section(html: str, name: str) -> str:
    found = re.search(rf'<section id="{name}".*?</section>', html, re.S)
    assert found, name
    return found.group(0)


def polyline(svg: str, series: int) -> list[tuple[float, float]]:
    found = re.findall(rf'<polyline class="line s{series}" points="([^"]+)"', svg)
    assert found, series
    return [tuple(float(n) for n in p.split(",")) for p in found[-1].split()]  # type: ignore[misc]


def y_of(svg: str, label: str) -> float:
    """Where the value axis puts `label` (its gridline's y)."""
    found = re.search(rf'y1="([\d.]+)" x2="[\d.]+" y2="[\d.]+"/><text class="ytick" x="\d+" y="[\d.]+">'
                      rf"{re.escape(label)}</text>", svg)
    assert found, label
    return float(found.group(1))


def test_slo_pages_need_a_session(client: TestClient) -> None:
    for path in PAGES:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/ui/login?next={path}"


def test_a_viewer_reads_them_with_the_nonce_and_no_other_script(
        client: TestClient, plane: ControlPlane, recorded: None) -> None:
    signed_in(client, plane)
    for path in [*PAGES, "/ui/slos/catalog-checks", "/ui/slos/sessions-up", "/ui/slos/gateway-latency"]:
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert '<a href="/ui/slos" aria-current="page">SLOs</a>' in answer.text
        nonce = re.search(r"'nonce-([^']+)'", answer.headers["content-security-policy"])
        assert nonce, path
        assert re.findall(r"<script[^>]*>", answer.text) == [f'<script nonce="{nonce.group(1)}">'], path
        assert " style=" not in answer.text  # the policy allows no inline style


def test_the_list_shows_each_slos_figures_and_state(client: TestClient, plane: ControlPlane,
                                                    recorded: None) -> None:
    html = signed_in(client, plane).get("/ui/slos").text
    assert "4 SLOs" in text(html) and "1 exhausted" in text(html) and "1 warning" in text(html)
    availability = row(html, "gateway-availability")
    words = text(availability)
    assert 'data-state="ok"' in availability and "state-ok" in availability
    assert "events, 7 days, rolling" in words and "99%" in words
    assert "99.5%" in words  # the SLI over the window
    assert 'data-remaining="0.5' in availability and "50%" in words
    assert "50% of the error budget left" in availability  # the bar says it too
    assert [b for b in re.findall(r'data-window="(\w+)">([\d.]+)<', availability)] == [
        ("1h", "0.00"), ("6h", "0.00"), ("1d", "0.00"), ("3d", "0.00")]
    assert '<svg class="spark"' in availability and "now 50%" in availability

    latency = row(html, "gateway-latency")
    assert 'data-state="warning"' in latency and "state-warning" in latency
    assert "latency, calendar month (UTC)" in text(latency)
    assert "burning fast: page: burn rate 20.0 over 1h and 20.0 over 5m (above 14.4)" in text(latency)
    assert re.search(r'data-window="1h">20.00<', latency)

    checks = row(html, "catalog-checks")
    assert 'data-state="exhausted"' in checks and "state-critical" in checks
    assert "error budget spent: 200% of it used, 100% over" in text(checks)
    assert "-100%" in text(checks) and 'width="0.0"' in checks  # an empty bar
    unknown = row(html, "sessions-up")
    assert 'data-state="unknown"' in unknown and "no events in the window yet" in text(unknown)
    assert "30 days, rolling" in text(unknown)


def test_half_the_budget_spent_is_50_percent_left_and_the_burn_down_ends_there(
        client: TestClient, plane: ControlPlane, recorded: None) -> None:
    html = signed_in(client, plane).get("/ui/slos/gateway-availability").text
    head = re.search(r'<div id="slo-head".*?</div>', html, re.S)
    assert head
    words = text(head.group(0))
    assert "gateway-availability ok" in words and "50% of the error budget left" in words
    assert re.search(r'data-figure="remaining">50%', html) and re.search(r'data-figure="sli">99.5%', html)
    assert "50% used" in words and "168,000 (840 bad)" in words

    burndown = re.search(r'<figure class="timechart" data-chart="burndown">(.*?)</figure>', html, re.S)
    assert burndown
    svg = burndown.group(1)
    assert "50% left now" in text(svg)
    points = polyline(svg, 0)
    full, zero = y_of(svg, "100%"), y_of(svg, "0%")
    half = (full + zero) / 2
    assert points[0][1] == pytest.approx(full, abs=0.2)  # a week ago the window before held no failure
    assert points[-1][1] == pytest.approx(half, abs=0.2)  # now: half left
    assert points[-1][0] == pytest.approx(744.0, abs=0.2)  # at the chart's right edge: now
    ideal = polyline(svg, 1)
    assert ideal[0][1] == pytest.approx(full, abs=0.2) and ideal[-1][1] == pytest.approx(zero, abs=0.2)
    assert '<line class="threshold firing"' in svg and "0%: budget spent" in svg
    assert ">4 Dec<" in svg and ">10 Dec<" in svg  # dated ticks over the week

    days = re.search(r'<figure class="timechart" data-chart="days">(.*?)</figure>', html, re.S)
    assert days
    assert "worst day 99%, 0 of 8 days below the objective" in text(days.group(1))
    assert "objective 99%" in days.group(1)

    definition = text(section(html, "slo-definition"))
    assert "SLI events: good events among all events" in definition
    assert 'Bad http_requests_total{status=~"5.."}' in definition.replace("&quot;", '"')
    assert "Window 7 days, rolling" in definition
    assert "Error budget 1% of the events (as time: 1 h 40 min in 7 days)" in definition
    assert "<b>edge</b>" not in html and "&lt;b&gt;edge&lt;/b&gt; requests &amp; their errors" in html


def test_burn_rates_are_set_against_the_alerts_factors_with_the_alert_firing(
        client: TestClient, plane: ControlPlane, recorded: None) -> None:
    html = signed_in(client, plane).get("/ui/slos/gateway-latency").text
    burn = section(html, "slo-burn")
    rows = dict(re.findall(r'<tr data-window="(\w+)" data-over="(\w+)"', burn))
    assert rows == {"1h": "yes", "6h": "no", "1d": "no", "3d": "no"}
    one_hour = re.search(r'<tr data-window="1h".*?</tr>', burn, re.S)
    assert one_hour
    words = text(one_hour.group(0))
    assert "page 1h 20.00" in words and "14.4 5m 20.00" in words and "6,000 of 100 needed" in words
    assert "over" in words
    assert '<svg class="burn-bar over"' in one_hour.group(0)
    six = re.search(r'<tr data-window="6h".*?</tr>', burn, re.S)
    assert six and "6h 0.58" in text(six.group(0)) and "under" in text(six.group(0))  # 4 clean hours in it
    firing = re.search(r'<li data-alert="SLOFastBurn">.*?</li>', burn, re.S)
    assert firing
    said = text(firing.group(0))
    assert "firing SLOFastBurn P1 since 2026-12-10 11:42:00 UTC, 62% of the budget left" in said
    assert "burns its error budget fast" in firing.group(0)
    gate = section(html, "slo-gate")
    assert 'data-held="no"' in gate and "does not hold deploys of gateway (deploy_gate: false)" in gate
    # a calendar month: the burn-down runs to the month's end and its SLI per day from the 1st
    assert "spending it evenly would leave" in html
    assert "31 Dec" in html or "29 Dec" in html or "30 Dec" in html


def test_a_spent_budget_holds_the_deploys_and_shows_its_event(
        client: TestClient, plane: ControlPlane, recorded: None) -> None:
    html = signed_in(client, plane).get("/ui/slos/catalog-checks").text
    gate = section(html, "slo-gate")
    assert 'data-held="yes"' in gate and "deploys held" in gate
    assert "Deploys of catalog are held: the error budget is spent (200% of it used)" in text(gate)
    assert "slo.budget_exhausted" in section(html, "slo-events")
    assert "checks: results of catalog's health checks that were OK" in text(html)
    assert y_of(html, "-100%") > y_of(html, "0%")  # the axis goes below 0 for an overspent budget


def test_last_months_review_and_other_months(client: TestClient, plane: ControlPlane, recorded: None) -> None:
    signed_in(client, plane)
    html = client.get("/ui/slos/gateway-availability").text
    review = section(html, "slo-review")
    words = text(review)
    assert "Review of 2026-11" in words
    assert "Achieved 100% against 99%: met" in words and "Budget used 0%" in words
    assert "#1 P2 gateway 5xx" in words and 'href="/ui/incidents/1"' in review
    assert 'href="?month=2026-10"' in review and 'href="?month=2026-12"' in review
    assert "opsplane slo report --month 2026-11 --markdown" in words
    december = text(section(client.get("/ui/slos/gateway-availability?month=2026-12").text, "slo-review"))
    # 840 bad of 228,000 since the 1st: 0.368% of a 1% budget
    assert "Review of 2026-12" in december and "Achieved 99.632% against 99%: met" in december
    assert "Budget used 36.8%" in december and "2026-12-04 (99%, 240 bad)" in december
    assert "2026-01" not in december  # no link to a month not begun
    october = client.get("/ui/slos/gateway-availability?month=2026-10").text
    assert "Nothing recorded in 2026-10" in october
    bad = client.get("/ui/slos/gateway-availability?month=November")
    assert bad.status_code == 200 and "cannot read month" in bad.text and "Review of 2026-11" in bad.text


def test_the_service_page_lists_its_slos_with_their_budget(
        client: TestClient, plane: ControlPlane, recorded: None) -> None:
    signed_in(client, plane)
    html = client.get("/ui/services/gateway").text
    part = section(html, "service-slos")
    names = re.findall(r'<li data-slo="([\w-]+)"><a href="/ui/slos/([\w-]+)">', part)
    assert names == [("gateway-availability", "gateway-availability"), ("gateway-latency", "gateway-latency")]
    first = re.search(r'<li data-slo="gateway-availability">.*?</li>', part, re.S)
    assert first and "50% left" in text(first.group(0)) and "ok" in text(first.group(0))
    catalog = section(client.get("/ui/services/catalog").text, "service-slos")
    assert "catalog-checks" in catalog and "-100% left" in text(catalog) and "exhausted" in text(catalog)
    assert 'id="service-slos"' not in client.get("/ui/services/postgres").text


def test_a_missing_slo_is_a_404_page(client: TestClient, plane: ControlPlane) -> None:
    signed_in(client, plane)
    missing = client.get("/ui/slos/checkout")
    assert missing.status_code == 404
    assert "No SLO checkout" in missing.text
    assert "gateway-availability, gateway-latency, catalog-checks, sessions-up" in missing.text
    escaped = client.get("/ui/slos/%3Cb%3E")
    assert escaped.status_code == 404 and "<b>" not in escaped.text.split("<main>")[1]


def test_with_nothing_recorded_every_slo_is_unknown(client: TestClient, plane: ControlPlane) -> None:
    signed_in(client, plane)
    html = client.get("/ui/slos").text
    assert "4 unknown" in text(html)
    page = client.get("/ui/slos/gateway-availability").text
    assert "nothing to judge in the window yet" in page and "no events in the window yet" in page
    assert "Nothing recorded in 2026-11" in page
