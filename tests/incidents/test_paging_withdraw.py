"""Pages queued before an incident was acknowledged or resolved and not sent yet are withdrawn
by the acknowledgement or resolution: never delivered afterwards, shown as withdrawn, and their
people are not told of an incident they never heard of. Over a real store with an injected
clock, the real dispatcher and webhook driver, and a real HTTP receiver on loopback standing
for the paging service, the SMS and voice gateways, the chat and the mail relay."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.config.models import Inventory
from opsplane.events.summary import summarise
from opsplane.events.tables import Event
from opsplane.incidents import paging, service
from opsplane.incidents.models import IncidentsSettings, Status
from opsplane.notify import service as notify
from opsplane.notify.dispatcher import Dispatcher
from opsplane.notify.tables import OutboxRow
from opsplane.store import Store
from tests.incidents import paging_support as support
from tests.incidents.paging_support import CONTACTS, MINUTE
from tests.notify.factories import seeded
from tests.oncall.factories import T0, oncall_data
from tests.support.cli import Opsplane
from tests.support.receivers import Answer, Received, RecordingReceiver

ANA, BEN = "+15550101", "+15550102"  # the primary's and the secondary's phone
ANA_CALL = "escalation:1:p0:r0:s0:ana:phone"
CHANNEL_NAMES = ("pagerduty", "sms-gateway", "voice-gateway", "incidents", "ops-mail")


@dataclass
class Platform:
    """The receiver behind every channel (one path each), answering by `answer`, and a
    dispatcher on the test's clock."""

    store: Store
    receiver: RecordingReceiver
    inventory: Inventory
    clock: ManualClock
    dispatcher: Dispatcher
    answers: list[Callable[[Received], Answer | None]] = field(default_factory=list)

    def cycle(self, minute: int) -> None:
        """What serve's delivery loop does at minute `minute`: page, then deliver."""
        at = minute * MINUTE
        self.clock.advance((T0 + at - self.clock.now()).total_seconds())
        support.page(self.store, self.inventory, at)
        self.dispatcher.run_once(T0 + at)

    def taken(self, channel: str, to: str | None = None) -> list[tuple[str, str]]:
        """(status, key) of what the receiver accepted on `channel` (for `to`, if given)."""
        return [(r.json()["status"], r.json()["key"]) for r in self.receiver.accepted
                if r.path == f"/{channel}" and (to is None or r.json().get("to") == to)]

    def row(self, key: str) -> OutboxRow:
        with self.store.session() as session:
            found = session.scalars(select(OutboxRow).where(OutboxRow.key == key)).one()
            session.expunge(found)
            return found


@pytest.fixture
def platform(store: Store) -> Iterator[Platform]:
    answers: list[Callable[[Received], Answer | None]] = []

    def answer(number: int, request: Received) -> Answer:
        for rule in answers:
            if (given := rule(request)) is not None:
                return given
        return Answer()

    with RecordingReceiver(by_request=answer) as receiver:
        channels = {name: {"type": "webhook", "url": receiver.url(f"/{name}")} for name in CHANNEL_NAMES}
        inventory = support.inventory(channels)
        clock = ManualClock(T0)
        dispatcher = Dispatcher(store, inventory.channels, clock=clock, random_source=seeded())
        try:
            yield Platform(store, receiver, inventory, clock, dispatcher, answers)
        finally:
            dispatcher.close()


def _ack(store: Store, at: timedelta, actor: str = "cli:ben") -> None:
    with store.session() as session:
        service.acknowledge(session, incident_id=1, actor=actor, now=T0 + at)


def _resolve(store: Store, at: timedelta, actor: str = "cli:ben") -> None:
    with store.session() as session:
        service.resolve(session, incident_id=1, actor=actor, now=T0 + at, settings=IncidentsSettings())


def _identified(store: Store, at: timedelta, actor: str = "cli:ben") -> None:
    with store.session() as session:
        service.post_update(session, incident_id=1, status=Status.IDENTIFIED, summary="Bad deploy",
                            actor=actor, now=T0 + at, settings=IncidentsSettings())


@pytest.mark.parametrize(("settle", "word", "notice"), [
    (_ack, "acknowledged", "acknowledge"),
    (_resolve, "resolved", "resolve"),
    (_identified, "acknowledged", "acknowledge"),  # a status update acknowledges on the way
], ids=["ack", "resolve", "status-update"])
def test_a_call_the_gateway_refused_until_the_ack_is_never_made_and_its_person_not_told(
        platform: Platform, settle: Callable[[Store, timedelta], None], word: str, notice: str) -> None:
    gateway_down = [True]  # the voice gateway answers 503 for ana's number until it recovers
    platform.answers.append(lambda r: Answer(503, b"unavailable") if gateway_down[0]
                            and r.path == "/voice-gateway" and r.json().get("to") == ANA else None)
    support.open_incident(platform.store)
    for minute in range(6):  # ana's call is retried in vain; ben's step at minute 5 reaches him
        platform.cycle(minute)
    assert platform.row(ANA_CALL).state == "pending"
    refused = len([r for r in platform.receiver.requests if r.json().get("to") == ANA
                   and r.path == "/voice-gateway"])

    settle(platform.store, 6 * MINUTE)
    gateway_down[0] = False
    for minute in range(6, 40):
        platform.cycle(minute)

    # nothing reached ana's phone, before or after: the refused attempts are all it got
    assert platform.taken("voice-gateway", ANA) == []
    assert len([r for r in platform.receiver.requests if r.path == "/voice-gateway"
                and r.json().get("to") == ANA]) == refused
    # ben was called, and hears that it is taken in hand; ana's SMS reached her, so she does too
    assert [status for status, _ in platform.taken("voice-gateway", BEN)] == ["trigger", notice]
    assert [status for status, _ in platform.taken("sms-gateway", ANA)] == ["trigger", notice]
    call = platform.row(ANA_CALL).as_dict()
    assert (call["state"], call["reason"]) == ("withdrawn", f"INC-1 {word} by ben")
    with platform.store.session() as session:
        [event] = session.scalars(select(Event).where(Event.kind == "notify.withdrawn")).all()
        counts = notify.count_by_state(session)
    assert event.target == f"voice-gateway:{ANA_CALL}" and event.ts == T0 + 6 * MINUTE
    assert summarise(event.kind, event.details, target=event.target, service=event.service,
                     outcome=event.outcome) == ("Withdrew P0 trigger for INC-1 to voice-gateway before it "
                                                f"was sent: INC-1 {word} by ben")
    assert counts["withdrawn"] == 1 and "pending" not in counts


def test_an_ack_committed_during_a_pass_stops_every_page_not_yet_claimed(platform: Platform) -> None:
    # ana acknowledges from the paging service's app while its page is being delivered: that
    # page was in flight and goes out; the SMS, the call and the chat post, due in the same
    # pass but not claimed yet, must not
    def ack_while_paged(request: Received) -> Answer | None:
        if request.path == "/pagerduty" and request.json()["status"] == "trigger":
            _ack(platform.store, timedelta(seconds=10), actor="token:ana")
        return None

    platform.answers.append(ack_while_paged)
    support.open_incident(platform.store)
    platform.cycle(0)
    for minute in range(1, 10):
        platform.cycle(minute)

    sent = [(r.path, r.json()["status"]) for r in platform.receiver.accepted]
    assert sent == [("/pagerduty", "trigger"), ("/pagerduty", "acknowledge")]
    assert platform.row("escalation:1:p0:r0:s0:ana:pagerduty").state == "delivered"
    for key in ("escalation:1:p0:r0:s0:ana:sms", ANA_CALL, "escalation:1:p0:r0:s0:#incidents:channel"):
        row = platform.row(key).as_dict()
        assert (row["state"], row["attempts"], row["reason"]) == ("withdrawn", 0, "INC-1 acknowledged by ana")


def test_a_page_in_flight_at_the_ack_that_fails_is_withdrawn_not_retried(platform: Platform) -> None:
    # the ack commits while the paging service is answering 503 to the first page: it was in
    # flight, so not withdrawn then, but it is not tried again either, and nobody tells
    # PagerDuty of an acknowledgement for a page it never took
    def ack_and_fail(request: Received) -> Answer | None:
        if request.path == "/pagerduty" and request.json()["status"] == "trigger":
            with platform.store.session() as session:
                if service.get_or_raise(session, incident_id=1).acknowledged_at is None:
                    service.acknowledge(session, incident_id=1, actor="token:ana",
                                        now=T0 + timedelta(seconds=10))
            return Answer(503, b"unavailable")
        return None

    platform.answers.append(ack_and_fail)
    support.open_incident(platform.store)
    for minute in range(30):
        platform.cycle(minute)

    assert [r.status for r in platform.receiver.requests if r.path == "/pagerduty"] == [503]
    # nothing else of the incident went out but the commander's reminder to post an update
    keys = [r.json()["key"] for r in platform.receiver.accepted]
    assert [key for key in keys if ":update_due:" not in key] == []
    page = platform.row("escalation:1:p0:r0:s0:ana:pagerduty").as_dict()
    assert (page["state"], page["attempts"], page["reason"]) == ("withdrawn", 1, "INC-1 acknowledged by ana")
    assert page["last_error"].startswith("HTTP 503") and page["sending_since"] is None
    with platform.store.session() as session:
        [event] = session.scalars(select(Event).where(
            Event.kind == "notify.withdrawn", Event.target.startswith("pagerduty:"))).all()
    assert summarise(event.kind, event.details, target=event.target, service=event.service,
                     outcome=event.outcome) == ("Withdrew P0 trigger for INC-1 to pagerduty after attempt 1 "
                                                "failed (HTTP 503: unavailable): INC-1 acknowledged by ana")


def test_a_page_delivered_after_the_ack_is_followed_by_the_ack_in_the_next_cycle(platform: Platform) -> None:
    # paging and delivery run in serve while `opsplane incident ack` runs elsewhere: the ack
    # commits between the page's claim and its answer; the page went out, so its person hears
    # of the acknowledgement too, once it is known to have reached them
    def ack_while_calling(request: Received) -> Answer | None:
        if request.path == "/voice-gateway" and request.json()["status"] == "trigger":
            _ack(platform.store, timedelta(seconds=10), actor="cli:ana")
        return None

    platform.answers.append(ack_while_calling)
    support.open_incident(platform.store)
    for minute in range(5):
        platform.cycle(minute)

    assert [status for status, _ in platform.taken("voice-gateway", ANA)] == ["trigger", "acknowledge"]
    assert [status for status, _ in platform.taken("pagerduty")] == ["trigger", "acknowledge"]
    assert [status for status, _ in platform.taken("sms-gateway", ANA)] == ["trigger", "acknowledge"]
    # the chat post came after the call in the pass: withdrawn, and the channel is told nothing
    assert platform.taken("incidents") == []



def test_a_page_queued_by_a_cycle_that_read_the_incident_before_the_ack_is_never_sent(
        platform: Platform) -> None:
    if platform.store.engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one transaction write at a time: the cycle's commit would be refused")
    # PostgreSQL: the paging cycle reads the incident (nobody holds it), and before it commits
    # its pages the ack commits, withdrawing what it can see: not the cycle's rows
    support.open_incident(platform.store)
    with platform.store.session() as cycle:
        queued = paging.page(cycle, inventory=platform.inventory, now=T0)
        _ack(platform.store, timedelta(seconds=20), actor="cli:ana")
    assert queued.pages == 4
    assert {row.state for row in map(platform.row, support.keys(platform.store))} == {"pending"}

    for minute in range(1, 10):
        platform.cycle(minute)

    assert [r.json()["key"] for r in platform.receiver.requests] == []
    rows = [platform.row(key).as_dict() for key in support.keys(platform.store)]
    assert {(row["state"], row["reason"], row["attempts"]) for row in rows} == {
        ("withdrawn", "INC-1 acknowledged by ana", 0)}

@pytest.mark.slow
def test_incident_ack_on_the_command_line_withdraws_the_pages_and_notify_outbox_shows_them(
        tmp_path: Path) -> None:
    data = {"platform": {"name": "shop"}, "services": {"payments": {"port": 8001}},
            "channels": {"named": {name: {"type": "webhook", "url": f"http://127.0.0.1:9/{name}"}
                                   for name in CHANNEL_NAMES}},
            "oncall": oncall_data(contact_channels=CONTACTS)}
    opsplane = Opsplane(tmp_path, data)
    opened = opsplane.json("incident", "open", "--service", "payments", "--severity", "P0",
                           "--title", "Payments down")
    store = Store.open(opsplane.env["OPSPLANE_DATABASE_URL"])
    try:  # serve's paging cycle queues the first step; no dispatcher has run yet
        with store.session() as session:
            paging.page(session, inventory=loads(yaml.safe_dump(data), "opsplane.yaml"),
                        now=datetime.fromisoformat(opened["started_at"]))
    finally:
        store.close()
    queued = opsplane.json("notify", "outbox")  # the primary of this week and #incidents
    assert len(queued) >= 2 and {row["state"] for row in queued} == {"pending"}

    opsplane("incident", "ack", "INC-1")  # as ana
    waiting = opsplane.json("notify", "outbox")
    withdrawn = opsplane.json("notify", "outbox", "--state", "withdrawn")
    table = opsplane("notify", "outbox", "--all").stdout
    refused = opsplane("notify", "outbox", "--state", "gone", code=3).stderr

    assert waiting == []
    assert [row["key"] for row in withdrawn] == [row["key"] for row in queued]
    assert all(row["key"].startswith("escalation:1:") for row in withdrawn)
    assert {(row["state"], row["reason"], row["attempts"]) for row in withdrawn} == {
        ("withdrawn", "INC-1 acknowledged by ana", 0)}
    assert "INC-1 acknowledged by ana" in table
    assert f"The outbox holds {len(queued)} withdrawn." in table
    assert "unknown state 'gone'" in refused
