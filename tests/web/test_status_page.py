"""The public status page through the app: no token needed, only public words, and the
state changes, incidents and notices of the store read back as customers should see them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.health.models import State
from opsplane.health.transitions import Transition
from opsplane.incidents import service as incidents
from opsplane.incidents.models import IncidentsSettings, Status
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from opsplane.web import maintenance, status
from opsplane.web.status import PublicState, component_state, state_from_checks

SECRET_REASON = "connect to 10.20.30.40:5432 refused (db-primary-07.internal)"


def check_ids(plane: ControlPlane, component: str) -> list[str]:
    return [t.id for t in plane.targets if t.component == component]


def record(plane: ControlPlane, component: str, before: State | None, after: State,
           hours_ago: float = 0.0, reason: str = SECRET_REASON) -> None:
    """State changes of every check of `component`, written the way serve writes them."""
    at = plane.clock.now() - timedelta(hours=hours_ago)
    plane.health.write([Transition(check_id=c, component=component, previous=before, current=after,
                             reason=reason, at=at) for c in check_ids(plane, component)])


def open_incident(plane: ControlPlane, *, public: str | None, private: str | None,
                  severity: str = "P1", service: str = "catalog") -> int:
    settings = IncidentsSettings()
    now = plane.clock.now()
    with plane.store.session() as session:
        row = incidents.create(session, title="Search results are slow", service=service,
                               severity=severity, actor="cli:alice", now=now, settings=settings)
        if private:
            incidents.post_update(session, incident_id=row.id, status=Status.INVESTIGATING,
                                  summary=private, actor="cli:alice", now=now, settings=settings)
        if public:
            incidents.post_update(session, incident_id=row.id, status=Status.IDENTIFIED,
                                  summary=public, actor="cli:alice", now=now + timedelta(seconds=1),
                                  settings=settings, public=True)
        return row.id


def test_the_page_and_its_json_answer_without_a_token_and_the_dashboard_still_refuses(
        client: TestClient) -> None:
    page = client.get("/status")
    assert page.status_code == 200 and "shop status" in page.text
    body = client.get("/status.json").json()
    assert [(c["name"], c["group"]) for c in body["components"]] == [
        ("gateway", "Services"), ("catalog", "Services"), ("postgres-main", "Databases"),
        ("sessions", "Caches")]
    assert body["status"]["state"] == "no data"
    assert len(body["components"][0]["days"]) == 90
    assert client.get("/status/static/status.css").status_code == 200
    assert client.get("/ui/").status_code == 303  # to the sign-in form
    assert client.get("/api/v1/events").status_code == 401


def test_check_states_become_public_words(client: TestClient, plane: ControlPlane) -> None:
    record(plane, "gateway", None, State.OK, reason="200 OK from 127.0.0.1:8000")
    record(plane, "postgres-main", None, State.CRITICAL)
    record(plane, "sessions", None, State.OK)  # no checks: nothing written, so no data
    body = client.get("/status.json").json()
    states = {c["name"]: c["state"] for c in body["components"]}
    assert states == {"gateway": "operational", "catalog": "no data",
                      "postgres-main": "major outage", "sessions": "no data"}
    assert body["status"] == {"state": "major outage", "description": "Major outage"}


def test_nothing_private_leaks(client: TestClient, plane: ControlPlane) -> None:
    record(plane, "catalog", None, State.CRITICAL)
    open_incident(plane, public="Search is slow for some customers.",
                  private="Primary at 10.20.30.40 is out of connections; failing over.")
    for text in (client.get("/status").text, client.get("/status.json").text):
        assert "Search is slow for some customers." in text
        for secret in ("10.20.30.40", "5432", "db-primary-07", "refused", "failing over", "alice",
                       "127.0.0.1", "8001", "Search results are slow", *check_ids(plane, "catalog")):
            assert secret not in text, secret


def test_an_incident_is_shown_by_its_public_title_or_words_from_its_severity(
        client: TestClient, plane: ControlPlane) -> None:
    first = open_incident(plane, public="We found the cause.", private=None, severity="P2")
    body = client.get("/status.json").json()
    [shown] = body["incidents"]
    assert (shown["title"], shown["components"]) == ("Degraded performance of catalog", ["catalog"])
    assert "Search results are slow" not in client.get("/status").text  # the responders' title
    with plane.store.session() as session:
        incidents.post_update(session, incident_id=first, status=Status.MONITORING,
                              summary="Fixed; watching.", actor="cli:alice", now=plane.clock.now(),
                              settings=IncidentsSettings(), public=True,
                              public_title="Search is slow")
    assert [i["title"] for i in client.get("/status.json").json()["incidents"]] == ["Search is slow"]


def test_components_off_the_page_stand_for_the_public_ones_that_depend_on_them() -> None:
    names = status.PublicNames(["gateway", "catalog", "orders"], {
        "gateway": ["catalog", "orders"], "catalog": ["pg"], "orders": ["pg", "queue"],
        "pg": ["host-1"], "queue": ["host-2"], "reports": ["host-3"], "host-1": [], "host-2": [],
        "host-3": []})
    assert names.of("catalog") == ("catalog",)
    assert names.of("pg") == ("catalog", "orders")  # the nearest public ones, in page order
    assert names.of("host-1") == ("catalog", "orders")
    assert names.of("host-2") == ("orders",)
    assert names.of("host-3") == ()  # only `reports`, off the page, depends on it
    assert names.of("node-exporter:9100") == ()  # a name the inventory does not know
    assert names.of_all(["host-2", "catalog"]) == ("catalog", "orders")
    assert status.public_title(None, "P0", ()) == "Major outage"
    assert status.public_title(None, "P1", ("catalog", "orders", "gateway")) == (
        "Service disruption of catalog, orders and gateway")
    assert status.public_title("Checkout is slow", "P3", ("orders",)) == "Checkout is slow"


def test_only_public_updates_and_only_incidents_with_one_are_shown(
        client: TestClient, plane: ControlPlane) -> None:
    shown = open_incident(plane, public="We found the cause.", private="It is the index rebuild.")
    open_incident(plane, public=None, private="Looking at postgres-main.", service="gateway",
                  severity="P0")
    body = client.get("/status.json").json()
    assert [i["id"] for i in body["incidents"]] == [f"INC-{shown}"]
    incident = body["incidents"][0]
    assert incident["impact"] == "major" and incident["status"] == "identified"
    assert [u["message"] for u in incident["updates"]] == ["We found the cause."]
    states = {c["name"]: c["state"] for c in body["components"]}
    assert states["catalog"] == "partial outage"  # P1, though no check failed
    assert states["gateway"] == "no data"  # its incident said nothing public


def test_resolved_incidents_stay_for_seven_days(client: TestClient, plane: ControlPlane,
                                                clock: ManualClock) -> None:
    number = open_incident(plane, public="Checkout is failing.", private=None, severity="P0")
    clock.advance(600)
    with plane.store.session() as session:
        incidents.resolve(session, incident_id=number, actor="cli:bob", now=clock.now(),
                          settings=IncidentsSettings(), summary="Fixed; all orders went through.",
                          public=True)
    body = client.get("/status.json").json()
    assert body["incidents"] == []
    assert [u["message"] for u in body["resolved_incidents"][0]["updates"]] == [
        "Fixed; all orders went through.", "Checkout is failing."]
    clock.advance(8 * 86400)
    assert client.get("/status.json").json()["resolved_incidents"] == []


def test_maintenance_notices_are_shown_until_they_end_and_mark_their_components(
        client: TestClient, plane: ControlPlane, clock: ManualClock) -> None:
    record(plane, "catalog", None, State.CRITICAL)
    now = clock.now()
    with plane.store.session() as session:
        maintenance.create(session, components=["catalog"], start=now + timedelta(hours=1),
                           end=now + timedelta(hours=2), message="Moving search to new servers.",
                           actor="cli:alice", now=now)
        gone = maintenance.create(session, components=["gateway"], start=now, end=now + timedelta(hours=1),
                                  message="Never mind.", actor="cli:alice", now=now)
        maintenance.cancel(session, notice_id=gone.id, actor="cli:alice", now=now)
    body = client.get("/status.json").json()
    assert [(n["message"], n["state"]) for n in body["maintenance"]] == [
        ("Moving search to new servers.", "scheduled")]
    assert {c["name"]: c["state"] for c in body["components"]}["catalog"] == "major outage"
    clock.advance(90 * 60)
    body = client.get("/status.json").json()
    assert body["maintenance"][0]["state"] == "in progress"
    assert {c["name"]: c["state"] for c in body["components"]}["catalog"] == "under maintenance"
    assert "Moving search to new servers." in client.get("/status").text
    clock.advance(3600)
    assert client.get("/status.json").json()["maintenance"] == []


def test_uptime_bars_come_from_the_recorded_state_changes(client: TestClient, plane: ControlPlane,
                                                          clock: ManualClock) -> None:
    # ManualClock starts at 10:00 UTC: OK from two days ago, CRITICAL from 06:00 to 09:00 today.
    record(plane, "gateway", None, State.OK, hours_ago=58)
    record(plane, "gateway", State.OK, State.CRITICAL, hours_ago=4)
    record(plane, "gateway", State.CRITICAL, State.OK, hours_ago=1)
    days = {c["name"]: c for c in client.get("/status.json").json()["components"]}["gateway"]["days"]
    assert [d["uptime"] for d in days[-4:]] == [None, 1.0, 1.0, pytest.approx(0.7, abs=0.001)]
    page = client.get("/status").text
    assert re.search(r"2026-01-06: 70\.0\d %", page) and "2026-01-03: no data" in page


def test_the_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/status")
    assert not re.search(r'(src|href)="(https?:)?//', page.text)
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text


def test_the_mapping_from_checks_incidents_and_maintenance() -> None:
    assert state_from_checks([]) is PublicState.NO_DATA
    assert state_from_checks(["UNKNOWN"]) is PublicState.NO_DATA
    assert state_from_checks(["OK", "UNKNOWN"]) is PublicState.OPERATIONAL
    assert state_from_checks(["OK", "WARNING"]) is PublicState.DEGRADED
    assert state_from_checks(["OK", "CRITICAL"]) is PublicState.PARTIAL_OUTAGE
    assert state_from_checks(["CRITICAL", "CRITICAL", "UNKNOWN"]) is PublicState.MAJOR_OUTAGE
    assert component_state(["OK"], ["P2"], False) is PublicState.DEGRADED
    assert component_state(["CRITICAL"], ["P2"], False) is PublicState.MAJOR_OUTAGE
    assert component_state(["CRITICAL"], ["P0"], True) is PublicState.MAINTENANCE


def test_views_reuse_the_uptime_until_a_state_changes(client: TestClient, plane: ControlPlane,
                                                      clock: ManualClock, monkeypatch) -> None:
    calls = []
    compute = status.compute_uptime

    def counted(*args, **kwargs):
        calls.append(1)
        return compute(*args, **kwargs)

    monkeypatch.setattr(status, "compute_uptime", counted)
    record(plane, "gateway", None, State.OK, hours_ago=2)
    for _ in range(3):
        client.get("/status.json")
    assert len(calls) == 1
    record(plane, "gateway", State.OK, State.CRITICAL, hours_ago=1)
    client.get("/status.json")
    assert len(calls) == 1  # a change within 5 s of the last computation waits for the next
    clock.advance(status.UPTIME_MIN_AGE)
    days = {c["name"]: c for c in client.get("/status.json").json()["components"]}["gateway"]["days"]
    assert len(calls) == 2 and days[-1]["uptime"] < 1.0
    clock.advance(status.UPTIME_CACHE_SECONDS + 1)
    client.get("/status.json")
    assert len(calls) == 3


def test_a_component_kept_off_the_page_is_in_neither_the_page_nor_the_json(tmp_path) -> None:
    inventory = loads("platform: {name: shop}\n"
                      "services:\n"
                      "  catalog: {port: 8001, checks: [{type: tcp}]}\n"
                      "  traffic: {kind: worker, status_page: false, checks: [{type: tcp, port: 9}]}\n")
    store = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    try:
        plane = ControlPlane(inventory, store, clock=ManualClock())
        record(plane, "traffic", None, State.CRITICAL)
        client = TestClient(create_app(plane))
        body = client.get("/status.json").json()
        assert [c["name"] for c in body["components"]] == ["catalog"]
        assert body["status"]["state"] == "no data"  # the failing generator does not count
        page = client.get("/status").text
        assert 'data-component="catalog"' in page and "traffic" not in page
    finally:
        store.close()


def test_uptime_counts_only_the_time_serve_watched_and_says_how_long_that_was(
        client: TestClient, plane: ControlPlane, clock: ManualClock) -> None:
    # serve ran four minutes (gateway failing for one of them) and stopped with it failing;
    # five hours later it started again and found gateway OK for another two minutes
    began = clock.now()
    plane._record_lifecycle("control_plane.started")
    record(plane, "gateway", None, State.OK)
    clock.advance(180)
    record(plane, "gateway", State.OK, State.CRITICAL)
    clock.advance(60)
    plane._record_lifecycle("control_plane.stopped")
    clock.advance(5 * 3600)
    plane._record_lifecycle("control_plane.started")
    record(plane, "gateway", State.CRITICAL, State.OK)
    clock.advance(120)
    body = client.get("/status.json").json()
    gateway = {c["name"]: c for c in body["components"]}["gateway"]
    assert gateway["observed_seconds"] == 360 and gateway["days"][-1]["observed_seconds"] == 360
    assert gateway["uptime_90d"] == pytest.approx(5 / 6, abs=1e-6)  # not 5 hours down
    assert gateway["monitoring_since"] == body["monitoring_since"] == began.isoformat()
    page = client.get("/status").text
    assert "83.33 % uptime over 6 min of data since 2026-01-06" in page
    assert f"Monitoring began {began:%Y-%m-%d %H:%M:%S} UTC" in page
    assert "2026-01-06: 83.33 %, only 6 min of data" in page
    assert "no data yet" in page  # catalog: nothing recorded


def test_the_uptime_text_names_the_span_it_was_measured_over() -> None:
    from opsplane.timefmt import span_words
    from opsplane.web.status_views import uptime_text
    from opsplane.web.uptime import ComponentUptime, DayUptime

    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

    def component(observed: float, down: float, since: datetime | None, days: int = 1):
        spread = [DayUptime(now.date() - timedelta(days=n), observed / days, down / days)
                  for n in range(days)]
        return status.PublicComponent("shop", "Services", PublicState.OPERATIONAL,
                                      ComponentUptime(tuple(spread), since))

    watched = 3 * 3600 + 12 * 60
    assert uptime_text(component(watched, watched * 0.008, now - timedelta(seconds=watched)),
                       now) == "99.20 % uptime over the last 3 h 12 min"
    assert uptime_text(component(600, 0, now - timedelta(days=2)), now) == (
        "100 % uptime over 10 min of data since 2026-03-08")
    assert uptime_text(component(90 * 86400, 432, now - timedelta(days=91), days=90), now) == (
        "99.99 % uptime over the last 90 days")
    assert uptime_text(component(0, 0, None), now) == "no data yet"
    assert [span_words(s) for s in (45, 720, 7200, 3 * 86400 + 3600)] == [
        "45 s", "12 min", "2 h", "3 days 1 h"]


def test_the_demo_keeps_its_traffic_generator_off_the_status_page(tmp_path) -> None:
    from opsplane.config.loader import load
    from opsplane.demo.stack import SHOP_SERVICES, DemoStack
    from opsplane.drivers.sandbox.ports import free_port

    (tmp_path / "demo" / "secrets").mkdir(parents=True)  # what starting its servers makes
    inventory = load(DemoStack(tmp_path / "demo").write_inventory(free_port()))
    store = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    try:
        shown = [name for name, _ in status.public_components(ControlPlane(inventory, store))]
    finally:
        store.close()
    assert "traffic" in [name for _, name, _ in inventory.components()]
    assert shown == list(SHOP_SERVICES)
