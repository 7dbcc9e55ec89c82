"""The incident pages through HTTP with a real store: the list (open first, overdue marked), one
incident (header, targets, updates, timeline, action items), its post-mortem draft, and
sign-in required for all of them. Incidents are made with the incident service and the
plane's ManualClock."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient

from opsplane.auth.service import Role
from opsplane.clock import ManualClock
from opsplane.events import service as events
from opsplane.incidents import service as incidents
from opsplane.incidents.models import AlertSignal, Status
from opsplane.server import ControlPlane
from tests.web.conftest import make_token

PATHS = ["/ui/incidents", "/ui/incidents/1", "/ui/incidents/1/postmortem"]
UPDATE = {"status": "identified", "summary": "Checkout fails for 5% of users.",
          "actions": "Rolling back deploy 41.", "next_update": "20m", "public": "on"}


def listed(html: str) -> list[str]:
    return re.findall(r'data-incident="([^"]+)"', html)


def alert_opened_incident(plane: ControlPlane, clock: ManualClock) -> int:
    """catalog's HighErrorRate fires and opens a P1 incident, which alice acknowledges two
    minutes later."""
    settings = plane.inventory.incidents
    with plane.store.session() as session:
        events.record(session, kind="alert.firing", actor="system:alerting", target="HighErrorRate",
                      service="catalog", outcome="firing", ts=clock.now(),
                      details={"annotations": {"summary": "5xx above 5% <b>for</b> 2m"}})
        [row] = incidents.open_or_join(session, now=clock.now(), settings=settings, alerts=[
            AlertSignal(fingerprint="f1", name="HighErrorRate", severity="P1", service="catalog",
                        group="catalog|group=", summary="catalog serves errors",
                        active_at=clock.now())])
        number = row.id
    clock.advance(120)
    with plane.store.session() as session:
        incidents.acknowledge(session, incident_id=number, actor="token:alice", now=clock.now())
    return number


def test_incident_pages_need_a_session(client: TestClient, plane: ControlPlane,
                                       clock: ManualClock) -> None:
    alert_opened_incident(plane, clock)
    for path in PATHS:
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/ui/login?next={path}"
        assert "catalog serves errors" not in answer.text


def test_the_list_shows_open_incidents_first_and_marks_an_overdue_update(
    signed_in: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    settings = plane.inventory.incidents
    with plane.store.session() as session:
        old = incidents.create(session, title="Search slow", service="catalog", severity="P2",
                               actor="token:bob", now=clock.now(), settings=settings).id
    clock.advance(600)
    with plane.store.session() as session:
        incidents.resolve(session, incident_id=old, actor="token:bob", now=clock.now(),
                          settings=settings, summary="Index rebuilt.")
    clock.advance(60)
    with plane.store.session() as session:
        p3 = incidents.create(session, title="Typo on the front page", service="gateway",
                              severity="P3", actor="token:bob", now=clock.now(), settings=settings).id
    clock.advance(60)
    p1 = alert_opened_incident(plane, clock)
    clock.advance(31 * 60)  # P1 updates are due every 30 minutes after the opening

    page = signed_in.get("/ui/incidents")
    assert page.status_code == 200
    assert listed(page.text) == [f"INC-{p1}", f"INC-{p3}", f"INC-{old}"]
    row = re.search(rf'<tr data-incident="INC-{p1}".*?</tr>', page.text, re.S)
    assert row is not None
    assert "catalog serves errors" in row.group(0) and "acknowledged" in row.group(0)
    assert "<td>alice</td>" in row.group(0)  # the acknowledger commands it
    assert "overdue" in row.group(0) and "33m so far" in row.group(0)
    resolved = re.search(rf'<tr data-incident="INC-{old}".*?</tr>', page.text, re.S)
    assert resolved is not None and "10m" in resolved.group(0) and "overdue" not in resolved.group(0)
    assert 'aria-current="page">Incidents' in page.text

    only_open = signed_in.get("/ui/incidents?show=open")
    assert listed(only_open.text) == [f"INC-{p1}", f"INC-{p3}"]


def test_an_incident_page_shows_header_targets_updates_timeline_and_action_items(
    signed_in: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    settings = plane.inventory.incidents
    number = alert_opened_incident(plane, clock)
    clock.advance(60)
    with plane.store.session() as session:
        incidents.post_update(session, incident_id=number, status=Status.IDENTIFIED,
                              summary="Checkout fails for 5% of users.", actions="Rolling back.",
                              public=True, actor="token:alice", now=clock.now(), settings=settings)
        incidents.add_note(session, incident_id=number, text="Deploy 41 changed the pool size",
                           actor="token:carol", now=clock.now())
        incidents.add_action_item(session, incident_id=number, title="Alert on pool exhaustion",
                                  owner="carol", due=None, actor="token:carol", now=clock.now())
    clock.advance(5 * 3600)  # past P1's four-hour resolution target, still open

    page = signed_in.get(f"/ui/incidents/INC-{number}")
    assert page.status_code == 200
    text = page.text
    assert f"INC-{number} catalog serves errors" in text
    assert "alice" in text and "carol" in text  # commander and participants
    ack = re.search(r'data-target="Time to acknowledge">.*?</tr>', text, re.S)
    resolve = re.search(r'data-target="Time to resolve">.*?</tr>', text, re.S)
    assert ack is not None and resolve is not None
    assert "2m" in ack.group(0) and "15m" in ack.group(0) and "target-met" in ack.group(0)
    assert "not yet" in resolve.group(0) and "target-missed" in resolve.group(0)
    assert 'class="badge public">public' in text and "Rolling back." in text
    timeline = text[text.index('id="incident-timeline"'):text.index('id="incident-actions"')]
    kinds = re.findall(r'data-kind="([^"]+)"', timeline)
    assert kinds.index("alert.firing") < kinds.index("incident.opened") < kinds.index(
        "incident.acknowledged") < kinds.index("incident.note")
    assert "Alert HighErrorRate firing: 5xx above 5% &lt;b&gt;for&lt;/b&gt; 2m" in timeline
    assert "acknowledged; commander alice" in timeline
    assert "Alert on pool exhaustion" in text
    assert f'href="/ui/incidents/{number}/postmortem"' in text

    draft = signed_in.get(f"/ui/incidents/{number}/postmortem")
    assert draft.status_code == 200
    assert f"# Post-mortem: INC-{number} catalog serves errors" in draft.text
    pre = draft.text[draft.text.index("<pre"):draft.text.index("</pre>")]
    assert "## Action items" in pre and "Alert on pool exhaustion" in pre
    assert "&lt;b&gt;for&lt;/b&gt;" in pre and "<b>" not in pre  # the draft is text, escaped


def test_a_resolved_incident_shows_its_duration_and_no_update_due(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = alert_opened_incident(plane, clock)
    clock.advance(600)
    with plane.store.session() as session:
        incidents.resolve(session, incident_id=number, actor="token:alice", now=clock.now(),
                          settings=plane.inventory.incidents)
    clock.advance(timedelta(days=1).total_seconds())
    # signed in a day later: a session idle that long would have ended
    assert client.post("/ui/login", data={"token": make_token(plane)}).status_code == 303
    text = client.get(f"/ui/incidents/{number}").text
    assert "lasted 12m" in text and "Next update due" not in text
    resolve = re.search(r'data-target="Time to resolve">.*?</tr>', text, re.S)
    assert resolve is not None and "12m" in resolve.group(0) and "target-met" in resolve.group(0)


def test_an_unknown_incident_is_a_404_page(signed_in: TestClient) -> None:
    for path in ("/ui/incidents/99", "/ui/incidents/nope", "/ui/incidents/99/postmortem"):
        answer = signed_in.get(path)
        assert answer.status_code == 404, path
        assert "No incident" in answer.text


# --- responding from the page ----------------------------------------------------------------


def sign_in(client: TestClient, plane: ControlPlane, role: Role, name: str) -> TestClient:
    answer = client.post("/ui/login", data={"token": make_token(plane, role, name)})
    assert answer.status_code == 303, answer.text
    return client


def opened(plane: ControlPlane, clock: ManualClock) -> int:
    with plane.store.session() as session:
        return incidents.create(session, title="Checkout fails", service="catalog", severity="P1",
                                actor="token:bob", now=clock.now(),
                                settings=plane.inventory.incidents).id


def actors(plane: ControlPlane, kind: str) -> list[str]:
    with plane.store.session() as session:
        return [e.actor for e in events.get_all(session, kind=kind)]


def test_a_responder_acknowledges_and_posts_an_update_recorded_with_their_name(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = opened(plane, clock)
    sign_in(client, plane, Role.RESPONDER, "alice")
    page = client.get(f"/ui/incidents/{number}").text
    assert f'action="/ui/incidents/{number}/ack"' in page and 'name="summary"' in page

    clock.advance(90)
    answer = client.post(f"/ui/incidents/{number}/ack")
    assert answer.status_code == 303 and answer.headers["location"] == f"/ui/incidents/{number}"
    assert actors(plane, "incident.acknowledged") == ["token:alice"]

    answer = client.post(f"/ui/incidents/{number}/updates", data=UPDATE)
    assert answer.status_code == 303
    assert actors(plane, "incident.updated") == ["token:alice"]
    with plane.store.session() as session:
        [update] = incidents.get_updates(session, incident_id=number)
        row = incidents.get_or_raise(session, incident_id=number)
    assert (update.status, update.public, update.author) == ("identified", True, "token:alice")
    assert update.next_update_at == clock.now() + timedelta(minutes=20)
    assert row.commander == "alice" and row.status == "identified"

    page = client.get(f"/ui/incidents/{number}").text
    assert 'class="badge public">public' in page and "Rolling back deploy 41." in page
    assert f'action="/ui/incidents/{number}/ack"' not in page  # acknowledged already
    timeline = page[page.index('id="incident-timeline"'):]
    assert "acknowledged; commander alice" in timeline and "token:alice" in timeline


def test_refused_actions_say_why_and_change_nothing(
    client: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = opened(plane, clock)
    sign_in(client, plane, Role.RESPONDER, "alice")
    empty = client.post(f"/ui/incidents/{number}/updates", data={**UPDATE, "summary": " "})
    assert empty.status_code == 422 and 'role="alert"' in empty.text
    assert "needs a summary" in empty.text
    wrong = client.post(f"/ui/incidents/{number}/updates", data={**UPDATE, "status": "triggered"})
    assert wrong.status_code == 422 and "one of investigating" in wrong.text
    unreadable = client.post(f"/ui/incidents/{number}/updates",
                             data={**UPDATE, "next_update": "soon"})
    assert unreadable.status_code == 422 and "cannot read next update" in unreadable.text
    assert client.post(f"/ui/incidents/{number}/ack").status_code == 303
    twice = client.post(f"/ui/incidents/{number}/ack")
    assert twice.status_code == 409 and 'role="alert"' in twice.text
    forged = client.post(f"/ui/incidents/{number}/updates", data=UPDATE,
                         headers={"sec-fetch-site": "cross-site"})
    assert forged.status_code == 403 and "another site" in forged.text
    assert client.post("/ui/incidents/99/ack").status_code == 404
    assert actors(plane, "incident.updated") == []
    assert actors(plane, "incident.acknowledged") == ["token:alice"]


def test_a_viewer_sees_no_forms_and_may_not_act(
    signed_in: TestClient, plane: ControlPlane, clock: ManualClock
) -> None:
    number = opened(plane, clock)
    page = signed_in.get(f"/ui/incidents/{number}").text
    assert "/ack" not in page and 'name="summary"' not in page
    assert signed_in.post(f"/ui/incidents/{number}/ack").status_code == 403
    assert signed_in.post(f"/ui/incidents/{number}/updates", data=UPDATE).status_code == 403
    assert actors(plane, "incident.acknowledged") == []
    assert actors(plane, "incident.updated") == []
