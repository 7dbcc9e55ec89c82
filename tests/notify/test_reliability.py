"""The outbox against receivers that fail for a while (500s and timeouts) and then recover:
every notification arrives exactly once, in order per group, also across a restart of the
dispatcher; every attempt is in the event log and no secret is."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsplane.clock import ManualClock
from opsplane.drivers.channels.base import ChannelDriver
from opsplane.drivers.channels.registry import open_channel
from opsplane.events import service as events
from opsplane.notify.dispatcher import Dispatcher
from opsplane.notify.models import Channel, ChannelsSettings
from opsplane.notify.outbox import Outbox
from opsplane.store import Store
from tests.notify.factories import pair, seeded
from tests.support.polling import wait_for
from tests.support.receivers import Answer, Plan, Received, RecordingReceiver

ROUTING_KEY = "PDKEY0123456789PDKEY0123456789AB"
HOOK_SECRET = "whsec-reliability"
ENVIRON = {"PD_KEY": ROUTING_KEY, "HOOK_SECRET": HOOK_SECRET}
GROUPS = 15


def flaky(failures: int) -> Plan:
    """The first `failures` requests fail: 500s, with every third one hanging past the
    client's timeout (and then refused, so the receiver took nothing)."""

    def plan(number: int) -> Answer:
        if number >= failures:
            return Answer()
        if number % 3 == 2:
            return Answer(503, b"late", delay=0.5)
        return Answer(500, b"internal error")

    return plan


@pytest.fixture
def receivers() -> Iterator[tuple[RecordingReceiver, RecordingReceiver]]:
    with RecordingReceiver(flaky(12)) as pagerduty, RecordingReceiver(flaky(9)) as webhook:
        yield pagerduty, webhook


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    yield opened
    opened.close()


def _settings(pagerduty: RecordingReceiver, webhook: RecordingReceiver) -> ChannelsSettings:
    return ChannelsSettings.model_validate({
        "retry": {"first": "2s", "max": "20s"},
        "named": {
            "pager": {"type": "pagerduty", "routing_key": "env:PD_KEY", "url": pagerduty.url("/v2/enqueue"),
                      "timeout": "200ms"},
            "hook": {"type": "webhook", "url": webhook.url("/hook"), "secret": "env:HOOK_SECRET",
                     "timeout": "200ms"},
        },
    })


def _opener(name: str, settings: Channel) -> ChannelDriver:
    return open_channel(name, settings, environ=ENVIRON)


def _enqueue_all(store: Store, settings: ChannelsSettings, clock: ManualClock) -> None:
    outbox = Outbox(store, settings)
    for number in range(GROUPS):
        for message in pair(f"incident-{number}"):
            outbox.enqueue(message, channels=["pager", "hook"], now=clock.now())
            clock.advance(0.1)


def _drain(dispatcher: Dispatcher, clock: ManualClock, passes: int = 200) -> None:
    for _ in range(passes):
        dispatcher.run_once(clock.now())
        if dispatcher.next_wakeup(clock.now()) is None:
            return
        clock.advance(1)
    raise AssertionError("the outbox did not drain")


def _pagerduty_events(pagerduty: RecordingReceiver) -> list[tuple[str, str]]:
    return [(r.json()["dedup_key"], r.json()["event_action"]) for r in pagerduty.accepted]


def _webhook_keys(webhook: RecordingReceiver) -> list[str]:
    return [r.headers["idempotency-key"] for r in webhook.accepted]


def _assert_once_and_in_order(received: list[tuple[str, str]]) -> None:
    assert len(received) == 2 * GROUPS
    assert Counter(received).most_common(1)[0][1] == 1, "a notification arrived twice"
    for number in range(GROUPS):
        group = f"incident-{number}"
        statuses = [status for g, status in received if g == group]
        assert statuses == ["trigger", "resolve"], f"{group} arrived as {statuses}"


def _as_pairs(keys: list[str]) -> list[tuple[str, str]]:
    return [(key.rsplit(":", 1)[0], key.rsplit(":", 1)[1]) for key in keys]


def test_every_notification_arrives_once_and_in_order_after_the_receivers_recover(
    sqlite_store: Store, receivers: tuple[RecordingReceiver, RecordingReceiver]
) -> None:
    pagerduty, webhook = receivers
    clock = ManualClock()
    settings = _settings(pagerduty, webhook)
    _enqueue_all(sqlite_store, settings, clock)

    _drain(Dispatcher(sqlite_store, settings, opener=_opener, random_source=seeded(), clock=clock), clock)

    assert pagerduty.arrivals > len(pagerduty.accepted)  # they did fail for a while
    _assert_once_and_in_order(_pagerduty_events(pagerduty))
    _assert_once_and_in_order(_as_pairs(_webhook_keys(webhook)))
    with sqlite_store.session() as session:
        attempts = events.get_all(session, kind="notify.*", limit=1000)
        logged = json.dumps([event.as_dict() for event in attempts])
    assert len(attempts) == pagerduty.arrivals + webhook.arrivals
    assert Counter(e.outcome for e in attempts) == {"delivered": 4 * GROUPS, "retry": 12 + 9}
    assert ROUTING_KEY not in logged and HOOK_SECRET not in logged


def test_a_new_dispatcher_over_the_same_store_never_sends_twice(
    sqlite_store: Store, receivers: tuple[RecordingReceiver, RecordingReceiver]
) -> None:
    pagerduty, webhook = receivers
    clock = ManualClock()
    settings = _settings(pagerduty, webhook)
    _enqueue_all(sqlite_store, settings, clock)

    first = Dispatcher(sqlite_store, settings, opener=_opener, random_source=seeded(), clock=clock)
    first.run_once(clock.now())
    first.close()
    delivered_before = len(pagerduty.accepted) + len(webhook.accepted)
    _drain(Dispatcher(sqlite_store, settings, opener=_opener, random_source=seeded(), clock=clock), clock)

    assert 0 < delivered_before < 4 * GROUPS
    _assert_once_and_in_order(_pagerduty_events(pagerduty))
    _assert_once_and_in_order(_as_pairs(_webhook_keys(webhook)))


def test_an_answer_lost_after_the_receiver_took_it_resends_with_the_same_idempotency_key(
    sqlite_store: Store,
) -> None:
    # The one duplicate an outbox cannot rule out: the receiver accepted, the answer never came.
    with RecordingReceiver(lambda n: Answer(202, delay=0.5) if n == 0 else Answer()) as webhook:
        clock = ManualClock()
        settings = ChannelsSettings.model_validate({"named": {
            "hook": {"type": "webhook", "url": webhook.url("/hook"), "timeout": "200ms"}}})
        trigger, _ = pair("incident-x")
        Outbox(sqlite_store, settings).enqueue(trigger, channels=["hook"], now=clock.now())
        _drain(Dispatcher(sqlite_store, settings, opener=_opener, random_source=seeded(), clock=clock), clock)
        arrived: list[Received] = wait_for(lambda: len(webhook.accepted) == 2 and webhook.accepted,
                                           "the late answer's request to be recorded", timeout=5)

    assert [r.headers["idempotency-key"] for r in arrived] == ["incident-x:trigger"] * 2
    assert len({r.headers["idempotency-key"] for r in arrived}) == 1  # what a receiver dedupes on


def test_two_dispatchers_at_once_over_one_store_send_each_notification_once(store: Store) -> None:
    import threading

    with RecordingReceiver() as webhook:
        clock = ManualClock()
        settings = ChannelsSettings.model_validate({"named": {
            "hook": {"type": "webhook", "url": webhook.url("/hook"), "rate_per_minute": 10_000}}})
        outbox = Outbox(store, settings)
        for number in range(GROUPS * 2):
            for message in pair(f"incident-{number}"):
                outbox.enqueue(message, channels=["hook"], now=clock.now())
        dispatchers = [Dispatcher(store, settings, opener=_opener, random_source=seeded(), clock=clock)
                       for _ in range(2)]
        errors: list[BaseException] = []

        def drain(dispatcher: Dispatcher) -> None:
            try:
                for _ in range(5):
                    dispatcher.run_once(clock.now())
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                errors.append(exc)

        threads = [threading.Thread(target=drain, args=(d,)) for d in dispatchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        keys = _webhook_keys(webhook)

    assert errors == []
    assert len(keys) == 4 * GROUPS and len(set(keys)) == len(keys)
    for number in range(GROUPS * 2):
        group = f"incident-{number}"
        assert [k for k in keys if k.startswith(group + ":")] == [f"{group}:trigger", f"{group}:resolve"]
