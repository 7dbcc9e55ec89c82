"""What holds a notification back, against real channel drivers and loopback receivers: order
is kept per recipient and per alert, not across the people of one incident; a backlog on one
channel holds back no other; a 429 holds its whole channel, from the moment it was answered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from opsplane.clock import ManualClock
from opsplane.drivers.channels.base import ChannelDriver
from opsplane.drivers.channels.registry import open_channel
from opsplane.notify import service
from opsplane.notify.dispatcher import Dispatcher
from opsplane.notify.models import Channel, ChannelsSettings, Notification
from opsplane.notify.outbox import Outbox
from opsplane.store import Store
from tests.notify.factories import notification, seeded
from tests.notify.mail import ScriptedMailServer
from tests.support.receivers import Answer, Received, RecordingReceiver, failing_first

ANA, BRUNO, VP = "+4915100000001", "+4915100000002", "+4915100000009"
ENVIRON = {"PD_KEY": "PDKEY0123456789PDKEY0123456789AB", "SLACK_URL": ""}


def _opener(environ: dict[str, str] | None = None) -> Callable[[str, Channel], ChannelDriver]:
    def opener(name: str, settings: Channel) -> ChannelDriver:
        return open_channel(name, settings, environ={**ENVIRON, **(environ or {})})

    return opener


def _page(step: int, person: str, to: str) -> Notification:
    """Escalation step `step` of incident 7 calling `person` at `to`, as on-call paging queues it."""
    return Notification(key=f"escalation:7:r0:s{step}:{person}:phone", group="incident:7", severity="P0",
                        summary="INC-7: checkout fails", service="orders", to=to)


def _acknowledged(to: str) -> Notification:
    return Notification(key=f"incident:7:incident.acknowledged:{to}", group="incident:7", severity="P0",
                        status="acknowledge", summary="INC-7 acknowledged by bruno", service="orders", to=to)


def _rows(store: Store) -> dict[str, tuple[str, timedelta | None]]:
    """key -> (state, how long after it was queued it was finished)."""
    with store.session() as session:
        return {row.key: (row.state, row.finished_at - row.created_at if row.finished_at else None)
                for row in service.get_all(session, limit=10_000)}


def test_a_person_whose_calls_fail_does_not_hold_back_the_calls_to_the_next_people(store: Store) -> None:
    def gateway(number: int, request: Received) -> Answer:  # fails Ana's number only
        return Answer(503, b'{"error": "carrier unavailable"}') if request.json()["to"] == ANA else Answer()

    with RecordingReceiver(by_request=gateway) as voice:
        clock = ManualClock()
        settings = ChannelsSettings.model_validate({"named": {
            "voice": {"type": "webhook", "url": voice.url("/calls"), "timeout": "1s"}}})
        outbox = Outbox(store, settings)
        dispatcher = Dispatcher(store, settings, opener=_opener(), random_source=seeded(), clock=clock)
        # Ana is called at once, Bruno at step 1 (5 min), the VP at step 4 (20 min); Bruno
        # acknowledges at minute 25, and everyone called hears of it
        schedule = {0: [_page(0, "ana", ANA)], 300: [_page(1, "bruno", BRUNO)], 1200: [_page(4, "vp", VP)],
                    1500: [_acknowledged(ANA), _acknowledged(BRUNO), _acknowledged(VP)]}
        for second in range(0, 2 * 3600, 30):  # two hours of passes, 30 s apart
            for message in schedule.get(second, []):
                outbox.enqueue(message, channels=["voice"], now=clock.now())
            dispatcher.run_once(clock.now())
            clock.advance(30)
        dispatcher.close()
        taken = [(r.json()["to"], r.json()["status"]) for r in voice.accepted]
        tried_for_ana = [r.json()["status"] for r in voice.requests if r.json()["to"] == ANA]

    assert taken == [(BRUNO, "trigger"), (VP, "trigger"), (BRUNO, "acknowledge"), (VP, "acknowledge")]
    rows = _rows(store)
    # each was called in the pass right after it was queued
    assert rows["escalation:7:r0:s1:bruno:phone"] == ("delivered", timedelta(0))
    assert rows["escalation:7:r0:s4:vp:phone"] == ("delivered", timedelta(0))
    # Ana's acknowledgement still waits behind her call: it is never sent before it
    assert set(tried_for_ana) == {"trigger"} and len(tried_for_ana) > 5
    assert rows[f"incident:7:incident.acknowledged:{ANA}"][0] == "pending"


def test_a_greylisted_address_does_not_hold_back_mail_to_the_next_person(store: Store,
                                                                        free_port: int) -> None:
    def greylist(address: str) -> str | None:
        return "450 4.2.0 Greylisted, try again later" if address == "ana@example.com" else None

    with ScriptedMailServer(free_port, recipient=greylist) as smtp:
        clock = ManualClock()
        settings = ChannelsSettings.model_validate({"named": {"mail": {
            "type": "email", "host": "127.0.0.1", "port": free_port, "starttls": False, "timeout": "5s",
            "sender": "opsplane@example.com", "to": ["ops@example.com"]}}})
        outbox = Outbox(store, settings)
        outbox.enqueue(_page(0, "ana", "ana@example.com"), channels=["mail"], now=clock.now())
        outbox.enqueue(_page(1, "bruno", "bruno@example.com"), channels=["mail"], now=clock.now())

        Dispatcher(store, settings, random_source=seeded(), clock=clock).run_once(clock.now())

    assert smtp.recipients == [["bruno@example.com"]]
    rows = _rows(store)
    assert rows["escalation:7:r0:s0:ana:phone"][0] == "pending"
    assert rows["escalation:7:r0:s1:bruno:phone"][0] == "delivered"


def test_a_backlog_over_one_channels_rate_delays_no_page_on_another_channel(store: Store) -> None:
    with RecordingReceiver() as slack, RecordingReceiver() as pagerduty:
        clock = ManualClock()
        settings = ChannelsSettings.model_validate({"named": {
            "slack": {"type": "slack", "webhook_url": "env:SLACK_URL", "rate_per_minute": 60},
            "pager": {"type": "pagerduty", "routing_key": "env:PD_KEY", "url": pagerduty.url("/v2/enqueue")},
        }})
        outbox = Outbox(store, settings)
        for number in range(400):  # a burst of P2 alerts to Slack, far over its 60 a minute
            outbox.enqueue(notification(key=f"disk-{number}", group=f"disk-{number}", severity="P2"),
                           channels=["slack"], now=clock.now())
        outbox.enqueue(notification(key="payments-down", group="payments", severity="P0"),
                       channels=["pager", "slack"], now=clock.now())
        dispatcher = Dispatcher(store, settings, opener=_opener({"SLACK_URL": slack.url("/hook")}),
                                random_source=seeded(), clock=clock)

        report = dispatcher.run_once(clock.now())
        dispatcher.close()
        paged = [r.json()["dedup_key"] for r in pagerduty.accepted]
        posted = [r.json()["text"] for r in slack.accepted]

    assert paged == ["payments"]
    assert len(posted) == 60 and report.rate_limited > 0
    # within Slack too, the P0 goes before the P2 backlog
    assert "[P0]" in posted[0]


def test_a_429_holds_the_whole_channel_until_its_retry_after_even_across_a_restart(store: Store) -> None:
    throttled = Answer(429, b'{"status": "throttle event"}', headers=(("Retry-After", "120"),))
    with RecordingReceiver(failing_first(1, throttled)) as pagerduty:
        clock = ManualClock()
        settings = ChannelsSettings.model_validate({"named": {
            "pager": {"type": "pagerduty", "routing_key": "env:PD_KEY",
                      "url": pagerduty.url("/v2/enqueue")}}})
        outbox = Outbox(store, settings)
        for number in range(5):
            outbox.enqueue(notification(key=f"k{number}", group=f"g{number}"), channels=["pager"],
                           now=clock.now())
        first = Dispatcher(store, settings, opener=_opener(), random_source=seeded(), clock=clock)

        first.run_once(clock.now())
        assert pagerduty.arrivals == 1  # the other four did not hit the throttled key
        assert first.next_wakeup(clock.now()) == clock.now() + timedelta(seconds=120)
        first.close()

        clock.advance(119)
        outbox.enqueue(notification(key="k5", group="g5"), channels=["pager"], now=clock.now())
        restarted = Dispatcher(store, settings, opener=_opener(), random_source=seeded(), clock=clock)
        restarted.run_once(clock.now())
        assert pagerduty.arrivals == 1  # the hold is in the store, not in the dispatcher
        clock.advance(1)
        restarted.run_once(clock.now())
        restarted.close()
        delivered = sorted(r.json()["payload"]["custom_details"]["key"] for r in pagerduty.accepted)

    assert delivered == ["k0", "k1", "k2", "k3", "k4", "k5"]
    assert pagerduty.arrivals == 7


def test_a_429_without_retry_after_holds_the_channel_for_the_back_off(store: Store) -> None:
    with RecordingReceiver(failing_first(1, Answer(429, b"slow down"))) as hook:
        clock = ManualClock()
        settings = ChannelsSettings.model_validate({"retry": {"first": "8s"}, "named": {
            "hook": {"type": "webhook", "url": hook.url("/hook")}}})
        for number in range(3):
            Outbox(store, settings).enqueue(notification(key=f"k{number}", group=f"g{number}"),
                                            channels=["hook"], now=clock.now())
        dispatcher = Dispatcher(store, settings, opener=_opener(), random_source=seeded(), clock=clock)

        dispatcher.run_once(clock.now())
        wakeup = dispatcher.next_wakeup(clock.now())
        dispatcher.close()

    assert hook.arrivals == 1
    assert wakeup is not None and 4 <= (wakeup - clock.now()).total_seconds() <= 8


def test_a_hanging_receiver_costs_one_timeout_a_pass_not_one_per_row(store: Store) -> None:
    clock = ManualClock()

    def hang(number: int) -> Answer:  # never answers within the channel's timeout
        clock.advance(0.2)
        return Answer(202, delay=0.6)

    with RecordingReceiver(hang) as voice, RecordingReceiver() as pagerduty:
        settings = ChannelsSettings.model_validate({"named": {
            "voice": {"type": "webhook", "url": voice.url("/calls"), "timeout": "200ms"},
            "pager": {"type": "pagerduty", "routing_key": "env:PD_KEY", "url": pagerduty.url("/v2/enqueue")},
        }})
        outbox = Outbox(store, settings)
        for person, phone in (("ana", ANA), ("bruno", BRUNO), ("vp", VP)):
            outbox.enqueue(_page(0, person, phone), channels=["voice"], now=clock.now())
        outbox.enqueue(notification(key="payments-down", group="payments", severity="P0"), channels=["pager"],
                       now=clock.now())
        dispatcher = Dispatcher(store, settings, opener=_opener(), random_source=seeded(), clock=clock)

        first = dispatcher.run_once(clock.now())
        hung_in_first = voice.arrivals
        # the other calls wait for the next pass, which comes at once: they are due
        wakeup = dispatcher.next_wakeup(clock.now())
        assert wakeup is not None and wakeup <= clock.now()
        dispatcher.run_once(clock.now())
        hung_in_second = voice.arrivals - hung_in_first
        dispatcher.close()
        paged = len(pagerduty.accepted)

    assert (hung_in_first, hung_in_second) == (1, 1)
    assert first.resting == {"voice"}
    assert paged == 1


def test_a_success_forgets_only_a_hold_that_had_ended_not_a_newer_one(store: Store) -> None:
    # Two dispatchers: one's send succeeds while the other has just been answered 429. The
    # success says the receiver took a request before that answer, not that it is free again.
    from opsplane.notify import lanes

    clock = ManualClock()
    answered = clock.now()
    with store.session() as session:
        lanes.hold(session, channel="pager", until=answered + timedelta(seconds=30), strikes=1,
                   reason="HTTP 429")
        lanes.hold(session, channel="chat", until=answered - timedelta(seconds=1), strikes=1,
                   reason="HTTP 429")
    with store.session() as session:
        lanes.release(session, channel="pager", answered_at=answered)
        lanes.release(session, channel="chat", answered_at=answered)
    with store.session() as session:
        left = lanes.holds(session)

    assert set(left) == {"pager"} and left["pager"].until == answered + timedelta(seconds=30)
