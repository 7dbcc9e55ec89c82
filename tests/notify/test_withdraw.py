"""Withdrawing notifications that are no longer to be sent (an incident's pages once someone
took it in hand), over a real store: what is taken back and what is not, a row queued or
claimed after the withdrawal, a row whose send is in flight, and a send that outlived its
claim. Receivers are real HTTP servers on loopback where a send is observed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from opsplane.clock import ManualClock
from opsplane.drivers.channels.base import Outcome, SendResult
from opsplane.events.tables import Event
from opsplane.notify import service
from opsplane.notify.dispatcher import Dispatcher, drivers_from
from opsplane.notify.models import ChannelsSettings, Notification
from opsplane.notify.outbox import Outbox
from opsplane.store import Store
from tests.notify.factories import ScriptedDriver, notification, seeded, settings
from tests.oncall.factories import T0
from tests.support.receivers import Answer, Received, RecordingReceiver

GROUP, PREFIX, REASON = "incident:7", "escalation:7:", "INC-7 acknowledged by ana"


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with RecordingReceiver() as started:
        yield started


def _hook(receiver: RecordingReceiver) -> ChannelsSettings:
    return settings({"hook": {"type": "webhook", "url": receiver.url("/hook")}})


def _page(key: str, **fields: object) -> Notification:
    return notification(key=key, group=fields.pop("group", GROUP), **fields)


def _withdraw(store: Store, at: timedelta = timedelta(0), reason: str = REASON) -> service.Withdrawn:
    with store.session() as session:
        return service.withdraw(session, group=GROUP, prefix=PREFIX, reason=reason, now=T0 + at)


def _rows(store: Store) -> dict[str, tuple[str, str]]:
    with store.session() as session:
        return {row.key: (row.state, row.reason) for row in service.get_all(session)}


def _withdrawn_events(store: Store) -> list[str]:
    with store.session() as session:
        return list(session.scalars(select(Event.target).where(Event.kind == "notify.withdrawn")
                                    .order_by(Event.id)))


def test_withdrawing_takes_back_the_waiting_pages_of_the_incident_and_nothing_else(
        store: Store, receiver: RecordingReceiver) -> None:
    config = _hook(receiver)
    outbox = Outbox(store, config)
    clock = ManualClock(T0)
    dispatcher = Dispatcher(store, config, clock=clock, random_source=seeded())
    try:
        outbox.enqueue(_page("escalation:7:p0:r0:s0:ana:phone"), channels=["hook"], now=T0)
        dispatcher.run_once(T0)  # delivered before the ack: stays delivered
        for message in (_page("escalation:7:p0:r0:s1:ben:phone"),
                        _page("escalation:7:p3:r0:s0:ana:email", severity="P3"),  # held for a digest
                        _page("incident:7:update:1"),  # a status update of the incident: not a page
                        _page("escalation:70:p0:r0:s0:ana:phone", group="incident:70"),
                        _page("escalation:7:p0:r0:s0:#ops:channel", group="elsewhere")):
            outbox.enqueue(message, channels=["hook"], now=T0)
        done = _withdraw(store, timedelta(minutes=3))
        dispatcher.run_once(T0 + timedelta(hours=2))  # past the digest's hour too
    finally:
        dispatcher.close()

    sent = [r.json()["key"] for r in receiver.accepted]
    assert sent == ["escalation:7:p0:r0:s0:ana:phone", "incident:7:update:1",
                    "escalation:70:p0:r0:s0:ana:phone", "escalation:7:p0:r0:s0:#ops:channel"]
    assert _rows(store) == {
        "escalation:7:p0:r0:s0:ana:phone": ("delivered", ""),
        "escalation:7:p0:r0:s1:ben:phone": ("withdrawn", REASON),
        "escalation:7:p3:r0:s0:ana:email": ("withdrawn", REASON),
        "incident:7:update:1": ("delivered", ""),
        "escalation:70:p0:r0:s0:ana:phone": ("delivered", ""),
        "escalation:7:p0:r0:s0:#ops:channel": ("delivered", ""),
    }
    assert (len(done.rows), done.in_flight) == (2, [])
    assert _withdrawn_events(store) == ["hook:escalation:7:p0:r0:s1:ben:phone",
                                        "hook:escalation:7:p3:r0:s0:ana:email"]
    assert Outbox(store, config).counts() == {"delivered": 4, "withdrawn": 2}


def test_a_page_queued_after_the_withdrawal_is_withdrawn_when_its_turn_comes(
        store: Store, receiver: RecordingReceiver) -> None:
    # a paging cycle that read the incident before the ack committed queues its pages after it
    config = _hook(receiver)
    _withdraw(store)
    outbox = Outbox(store, config)
    late = outbox.enqueue(_page("escalation:7:p0:r0:s1:ben:phone"), channels=["hook"], now=T0)
    outbox.enqueue(_page("escalation:7:p3:r0:s0:ana:email", severity="P3"), channels=["hook"], now=T0)
    dispatcher = Dispatcher(store, config, clock=ManualClock(T0), random_source=seeded())
    try:
        report = dispatcher.run_once(T0 + timedelta(minutes=1))
        digests = dispatcher.run_once(T0 + timedelta(hours=2)).digests
    finally:
        dispatcher.close()

    assert receiver.requests == []
    attempts = [(a.row_id, a.outcome, a.detail) for a in report.attempts]
    assert attempts == [(late[0].row_id, "withdrawn", REASON)]
    assert digests == 0
    assert set(_rows(store).values()) == {("withdrawn", REASON)}
    assert len(_withdrawn_events(store)) == 2


def test_a_page_being_sent_is_left_to_its_send_and_withdrawing_again_keeps_the_first_reason(
        store: Store) -> None:
    withdrawals: list[service.Withdrawn] = []

    def ack_while_sending(number: int, request: Received) -> Answer:
        withdrawals.append(_withdraw(store, timedelta(seconds=5)))
        return Answer()

    with RecordingReceiver(by_request=ack_while_sending) as receiver:
        config = _hook(receiver)
        [queued] = Outbox(store, config).enqueue(_page("escalation:7:p0:r0:s0:ana:phone"), channels=["hook"],
                                                 now=T0)
        dispatcher = Dispatcher(store, config, clock=ManualClock(T0), random_source=seeded())
        try:
            dispatcher.run_once(T0)
        finally:
            dispatcher.close()
    again = _withdraw(store, timedelta(minutes=9), reason="INC-7 resolved by ben")

    assert [(w.rows, w.in_flight) for w in withdrawals] == [([], [queued.row_id])]
    assert (again.rows, again.in_flight) == ([], [])
    assert len(receiver.accepted) == 1
    assert _rows(store) == {"escalation:7:p0:r0:s0:ana:phone": ("delivered", "")}
    with store.session() as session:
        row = service.get(session, row_id=queued.row_id)
        assert row is not None and row.sending_since is None
        assert service.withdrawal_of(session, group=GROUP, key="escalation:7:x") == REASON
        assert service.withdrawal_of(session, group=GROUP, key="incident:7:update:1") is None


def test_a_send_that_outlived_its_claim_and_delivered_counts_as_delivered(store: Store) -> None:
    # dispatcher A loses the store for longer than its lease while sending; B finds the row
    # due again, covered by a withdrawal, and withdraws it; then A's receiver takes the page.
    # It reached the person: delivered, whatever B wrote meanwhile.
    clock = ManualClock(T0)
    config = settings({"hook": {"type": "webhook", "url": "http://127.0.0.1:9/hook", "timeout": "1s"}})
    second: list[Dispatcher] = []

    def outlive_the_claim(message: Notification) -> SendResult:
        _withdraw(store, timedelta(seconds=1))
        clock.advance(60)
        second[0].run_once()
        return SendResult(Outcome.DELIVERED, "HTTP 202")

    first = Dispatcher(store, config, clock=clock, random_source=seeded(), lease_check=3600,
                       opener=drivers_from({"hook": ScriptedDriver("hook", outlive_the_claim)}))
    second.append(Dispatcher(store, config, clock=clock, random_source=seeded(), lease_check=3600,
                             opener=drivers_from({"hook": ScriptedDriver("hook")})))
    Outbox(store, config).enqueue(_page("escalation:7:p0:r0:s0:ana:phone"), channels=["hook"], now=T0)
    try:
        report = first.run_once()
    finally:
        first.close()
        second[0].close()

    assert [a.outcome for a in report.attempts] == ["delivered"]
    assert _rows(store) == {"escalation:7:p0:r0:s0:ana:phone": ("delivered", "")}
