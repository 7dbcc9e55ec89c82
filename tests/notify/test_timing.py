"""When the dispatcher sends and when it wakes, on an injected clock against real receivers:
Retry-After and claim leases count from each send, not from the start of a long pass; a
claim outlives a slow send; and while nothing can be sent the next wake-up is in the future,
so a loop that sleeps until it does not spin."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event

from opsplane.clock import ManualClock
from opsplane.drivers.channels.base import ChannelDriver
from opsplane.drivers.channels.registry import open_channel
from opsplane.notify import service
from opsplane.notify.dispatcher import Attempt, Dispatcher
from opsplane.notify.models import Channel, ChannelsSettings, Notification
from opsplane.notify.outbox import Outbox
from opsplane.store import Store
from tests.notify.factories import notification, seeded
from tests.notify.mail import ScriptedMailServer
from tests.support.polling import wait_for
from tests.support.receivers import Answer, RecordingReceiver


def _opener(name: str, settings: Channel) -> ChannelDriver:
    return open_channel(name, settings, environ={})


def _hook(url: str, **fields: Any) -> ChannelsSettings:
    return ChannelsSettings.model_validate({"named": {"hook": {"type": "webhook", "url": url, **fields}}})


def _queue(store: Store, settings: ChannelsSettings, clock: ManualClock, *messages: Notification,
           channel: str = "hook") -> dict[str, int]:
    ids = {}
    for message in messages:
        [queued] = Outbox(store, settings).enqueue(message, channels=[channel], now=clock.now())
        assert queued.row_id is not None
        ids[message.key] = queued.row_id
    return ids


def _next_attempt(store: Store, row_id: int) -> datetime:
    with store.session() as session:
        row = service.get(session, row_id=row_id)
        assert row is not None
        return row.next_attempt_at


def test_retry_after_counts_from_the_answer_not_from_the_start_of_the_pass(store: Store) -> None:
    clock = ManualClock()

    def slow(number: int) -> Answer:  # each request takes a minute; the third is asked to wait 30 s
        clock.advance(60)
        return Answer(503, b"busy", headers=(("Retry-After", "30"),)) if number == 2 else Answer()

    with RecordingReceiver(slow) as hook:
        settings = _hook(hook.url("/hook"))
        ids = _queue(store, settings, clock, *(notification(key=f"k{n}", group=f"g{n}") for n in range(3)))
        Dispatcher(store, settings, opener=_opener, random_source=seeded(), clock=clock).run_once(clock.now())

    answered_at = clock.now()  # three minutes after the pass began
    assert _next_attempt(store, ids["k2"]) == answered_at + timedelta(seconds=30)


def test_a_row_claimed_late_in_a_long_pass_is_not_sent_again_by_a_second_dispatcher(store: Store) -> None:
    clock = ManualClock()
    ids: dict[str, int] = {}
    second: list[Dispatcher] = []
    second_tried: list[Attempt] = []

    def slow(number: int) -> Answer:
        if number == 2:  # as the first dispatcher sends its third row, a minute into its pass,
            # a second one looks at that row
            second_tried.extend(second[0].run_once(clock.now(), only={ids["k2"]}).attempts)
        clock.advance(30)  # a slow receiver: half a minute a request, within the claim's lease
        return Answer()

    with RecordingReceiver(slow) as hook:
        settings = _hook(hook.url("/hook"))
        rows = (notification(key=f"k{n}", group=f"g{n}") for n in range(4))
        ids.update(_queue(store, settings, clock, *rows))
        second.append(Dispatcher(store, settings, opener=_opener, random_source=seeded(), clock=clock))
        Dispatcher(store, settings, opener=_opener, random_source=seeded(), clock=clock).run_once(clock.now())
        keys = [r.headers["idempotency-key"] for r in hook.accepted]

    assert second_tried == []
    assert sorted(keys) == ["k0", "k1", "k2", "k3"]


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return bool(wait_for(condition, "the claim to be renewed", timeout=2))
    except AssertionError:
        return False


def test_a_claim_outlives_a_slow_send_so_a_second_dispatcher_never_sends_it_again(
    store: Store, free_port: int,
) -> None:
    clock = ManualClock()
    settings = ChannelsSettings.model_validate({"named": {"mail": {
        "type": "email", "host": "127.0.0.1", "port": free_port, "starttls": False, "timeout": "10s",
        "sender": "opsplane@example.com", "to": ["ops@example.com"]}}})
    [row_id] = _queue(store, settings, clock, notification(key="k"), channel="mail").values()
    second = Dispatcher(store, settings, random_source=seeded(), clock=clock)
    covered: list[bool] = []
    second_tried: list[Attempt] = []

    def tarpit(command: str) -> None:
        # each SMTP step takes 20 s of injected time: 60 s in all, past the channel's
        # timeout and the claim's first lease (10 s + 30 s)
        clock.advance(20)
        covered.append(_holds(lambda: _next_attempt(store, row_id) > clock.now()))
        if command == "DATA":
            second_tried.extend(second.run_once(clock.now()).attempts)

    with ScriptedMailServer(free_port, step=tarpit) as smtp:
        first = Dispatcher(store, settings, random_source=seeded(), clock=clock, lease_check=0.01)
        first.run_once(clock.now())
        first.close()

    assert covered == [True, True, True]
    assert second_tried == []
    assert len(smtp.messages) == 1


def test_while_a_receiver_is_down_the_dispatcher_wakes_only_when_something_can_be_sent(
    store: Store, free_port: int,
) -> None:
    clock = ManualClock()
    start = clock.now()
    with RecordingReceiver() as chat:
        settings = ChannelsSettings.model_validate({"named": {
            # nothing listens on free_port: every call is refused
            "voice": {"type": "webhook", "url": f"http://127.0.0.1:{free_port}/calls"},
            "chat": {"type": "webhook", "url": chat.url("/chat"), "rate_per_minute": 2},
        }})
        for person in ("ana", "bruno", "vp"):  # a call each, and the acknowledgement behind it
            for kind, status in (("call", "trigger"), ("ack", "acknowledge")):
                _queue(store, settings, clock, Notification(key=f"{kind}:{person}", group="incident:7",
                                                            to=person, status=status, summary="INC-7"),
                       channel="voice")
        _queue(store, settings, clock, *(notification(key=f"post-{n}", group=f"g{n}") for n in range(6)),
               channel="chat")
        statements = []
        event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(1))
        dispatcher = Dispatcher(store, settings, opener=_opener, random_source=seeded(), clock=clock)
        passes = 0
        chat_done_at = None
        while clock.now() < start + timedelta(hours=1):
            report = dispatcher.run_once(clock.now())
            passes += 1
            wakeup = dispatcher.next_wakeup(clock.now())
            assert wakeup is not None
            # waking at once is right only after a pass that sent something (it may have
            # freed the next message of a recipient)
            assert wakeup > clock.now() or report.attempts, f"pass {passes} sent nothing, yet wakes at once"
            assert passes < 300, "the dispatcher keeps waking up while nothing can be sent"
            if chat_done_at is None and len(chat.accepted) == 6:
                chat_done_at = clock.now()
            clock.advance((wakeup - clock.now()).total_seconds())
        dispatcher.close()

    assert chat_done_at is not None and chat_done_at - start <= timedelta(minutes=3)
    # three refused calls retried with back-off for an hour (about 12 attempts each), and
    # three rate-limited minutes of chat: a few dozen passes, not a spin
    assert passes <= 80
    assert len(statements) <= passes * 40
