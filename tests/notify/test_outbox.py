"""The outbox and its dispatcher over a real store, with channel test doubles: idempotency,
ordering per group, back-off, Retry-After, permanent failures, giving up, rate limits,
digests, muting, leases and the event log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from opsplane.clock import ManualClock
from opsplane.drivers.channels.base import Outcome, SendResult
from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.notify import service
from opsplane.notify.dispatcher import Dispatcher, drivers_from
from opsplane.notify.models import ChannelsSettings, Notification
from opsplane.notify.outbox import Outbox
from opsplane.store import Store
from tests.notify.factories import ScriptedDriver, notification, pair, seeded, settings

CHANNELS = {
    "slack": {"type": "slack", "webhook_url": "env:SLACK_URL", "rate_per_minute": 3},
    "pager": {"type": "pagerduty", "routing_key": "env:PD_KEY"},
    "console": {"type": "console"},
}


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    yield opened
    opened.close()


def _dispatcher(store: Store, config: ChannelsSettings, clock: ManualClock,
                **drivers: ScriptedDriver) -> Dispatcher:
    return Dispatcher(store, config, clock=clock, opener=drivers_from(drivers), random_source=seeded())


def _states(store: Store) -> list[tuple[str, str, str]]:
    with store.session() as session:
        return [(row.channel, row.key, row.state) for row in service.get_all(session)]


def test_enqueueing_the_same_key_twice_keeps_one_row(store: Store) -> None:
    clock = ManualClock()
    outbox = Outbox(store, settings(CHANNELS))
    message = notification(key="a:trigger")

    first = outbox.enqueue(message, channels=["slack", "pager"], now=clock.now())
    again = outbox.enqueue(message, channels=["slack", "pager"], now=clock.now())

    assert [e.new for e in first] == [True, True]
    assert [e.new for e in again] == [False, False]
    assert [e.row_id for e in again] == [e.row_id for e in first]
    assert outbox.counts() == {"pending": 2}


def test_an_unknown_channel_is_named_with_a_suggestion(store: Store) -> None:
    outbox = Outbox(store, settings(CHANNELS))
    with pytest.raises(UsageError, match="unknown channel 'slak'; did you mean 'slack'"):
        outbox.enqueue(notification(), channels=["slak"], now=ManualClock().now())


def test_a_muted_trigger_is_not_queued_but_the_resolve_of_a_notified_trigger_is(store: Store) -> None:
    clock = ManualClock()
    outbox = Outbox(store, settings(CHANNELS))
    paged_trigger, paged_resolve = pair("paged")
    quiet_trigger, quiet_resolve = pair("quiet")

    outbox.enqueue(paged_trigger, channels=["pager"], now=clock.now())
    outbox.enqueue(quiet_trigger, channels=["pager"], now=clock.now(), muted=True)
    [kept] = outbox.enqueue(paged_resolve, channels=["pager"], now=clock.now(), muted=True)
    [dropped] = outbox.enqueue(quiet_resolve, channels=["pager"], now=clock.now(), muted=True)

    assert kept.row_id is not None and dropped.row_id is None
    assert [key for _, key, _ in _states(store)] == ["paged:trigger", "paged:resolve"]
    with store.session() as session:
        assert len(events.get_all(session, kind="notify.muted")) == 2


def test_delivery_marks_rows_delivered_and_records_each_attempt(sqlite_store: Store) -> None:
    clock = ManualClock()
    Outbox(sqlite_store, settings(CHANNELS)).enqueue(notification(key="k1"), channels=["pager"],
                                                     now=clock.now())
    pager = ScriptedDriver("pager")

    report = _dispatcher(sqlite_store, settings(CHANNELS), clock, pager=pager).run_once(clock.now())

    assert report.count("delivered") == 1
    assert [n.key for n in pager.sent] == ["k1"]
    assert _states(sqlite_store) == [("pager", "k1", "delivered")]
    with sqlite_store.session() as session:
        [event] = events.get_all(session, kind="notify.*")
        assert (event.kind, event.target, event.outcome) == ("notify.delivered", "pager:k1", "delivered")
        assert event.details["channel"] == "pager" and event.details["attempt"] == 1


def test_a_later_message_of_a_group_waits_for_the_earlier_one(store: Store) -> None:
    clock = ManualClock()
    config = settings(CHANNELS)
    outbox = Outbox(store, config)
    trigger, resolve = pair("g")
    other = notification(key="other", group="other")
    for message in (trigger, resolve, other):
        outbox.enqueue(message, channels=["pager"], now=clock.now())
    failures = iter([SendResult(Outcome.RETRY, "HTTP 503", 503)])
    pager = ScriptedDriver("pager", lambda n: next(failures, SendResult(Outcome.DELIVERED)))
    dispatcher = _dispatcher(store, config, clock, pager=pager)

    dispatcher.run_once(clock.now())
    assert [n.key for n in pager.sent] == ["g:trigger", "other"]  # the resolve waits its turn

    clock.advance(60)
    dispatcher.run_once(clock.now())
    assert [n.key for n in pager.sent] == ["g:trigger", "other", "g:trigger", "g:resolve"]


def test_retries_back_off_with_jitter_and_honour_retry_after(sqlite_store: Store) -> None:
    clock = ManualClock()
    config = settings(CHANNELS, retry={"first": "10s", "max": "10m"})
    Outbox(sqlite_store, config).enqueue(notification(key="k"), channels=["pager"], now=clock.now())
    answers = iter([SendResult(Outcome.RETRY, "HTTP 500", 500),
                    SendResult(Outcome.RETRY, "HTTP 429", 429, retry_after=300.0)])
    pager = ScriptedDriver("pager", lambda n: next(answers, SendResult(Outcome.DELIVERED)))
    dispatcher = _dispatcher(sqlite_store, config, clock, pager=pager)
    jitter = seeded()()

    dispatcher.run_once(clock.now())
    with sqlite_store.session() as session:
        [row] = service.get_all(session)
        first_wait = (row.next_attempt_at - clock.now()).total_seconds()
    assert first_wait == pytest.approx(5 + jitter * 5)
    assert 5 <= first_wait <= 10

    clock.advance(first_wait - 1)
    assert dispatcher.run_once(clock.now()).attempts == []  # not due yet
    clock.advance(1)
    dispatcher.run_once(clock.now())  # 429 asking for 300 s
    with sqlite_store.session() as session:
        [row] = service.get_all(session)
        assert row.next_attempt_at - clock.now() == timedelta(seconds=300)
        assert row.attempts == 2 and row.last_error == "HTTP 429"
    clock.advance(300)
    assert dispatcher.run_once(clock.now()).count("delivered") == 1


def test_a_refusal_fails_for_good_and_frees_the_group(sqlite_store: Store) -> None:
    clock = ManualClock()
    config = settings(CHANNELS)
    trigger, resolve = pair("g")
    for message in (trigger, resolve):
        Outbox(sqlite_store, config).enqueue(message, channels=["pager"], now=clock.now())
    pager = ScriptedDriver("pager", lambda n: SendResult(Outcome.FAILED, "HTTP 400: invalid", 400)
                           if n.status == "trigger" else SendResult(Outcome.DELIVERED))

    report = _dispatcher(sqlite_store, config, clock, pager=pager).run_once(clock.now())

    assert [a.outcome for a in report.attempts] == ["failed", "delivered"]
    assert _states(sqlite_store) == [("pager", "g:trigger", "failed"), ("pager", "g:resolve", "delivered")]
    with sqlite_store.session() as session:
        [failed] = events.get_all(session, kind="notify.failed")
        assert failed.details["http_status"] == 400 and failed.details["detail"] == "HTTP 400: invalid"


def test_a_notification_never_delivered_within_give_up_after_is_dead(sqlite_store: Store) -> None:
    clock = ManualClock()
    config = settings(CHANNELS, retry={"first": "1m", "max": "1m", "give_up_after": "5m"})
    Outbox(sqlite_store, config).enqueue(notification(key="k"), channels=["pager"], now=clock.now())
    pager = ScriptedDriver("pager", lambda n: SendResult(Outcome.RETRY, "timed out"))
    dispatcher = _dispatcher(sqlite_store, config, clock, pager=pager)

    outcomes = []
    for _ in range(12):
        outcomes += [a.outcome for a in dispatcher.run_once(clock.now()).attempts]
        clock.advance(60)

    assert outcomes[-1] == "dead" and set(outcomes[:-1]) == {"retry"}
    assert 5 <= len(outcomes) <= 10
    assert _states(sqlite_store) == [("pager", "k", "dead")]


def test_each_channel_keeps_its_rate_across_a_restart(store: Store) -> None:
    clock = ManualClock()
    config = settings(CHANNELS)  # slack: 3 a minute
    for n in range(5):
        Outbox(store, config).enqueue(notification(key=f"k{n}"), channels=["slack", "console"],
                                             now=clock.now())
    slack, console = ScriptedDriver("slack"), ScriptedDriver("console")

    report = _dispatcher(store, config, clock, slack=slack, console=console).run_once(clock.now())
    assert (len(slack.sent), len(console.sent), report.rate_limited) == (3, 5, 2)

    clock.advance(30)
    restarted = _dispatcher(store, config, clock, slack=slack, console=console)
    assert restarted.run_once(clock.now()).rate_limited == 2  # the minute is not over
    clock.advance(31)
    restarted.run_once(clock.now())
    assert [n.key for n in slack.sent] == ["k0", "k1", "k2", "k3", "k4"]


def test_p3_notifications_are_held_and_sent_as_one_digest(store: Store) -> None:
    clock = ManualClock()
    config = settings(CHANNELS, digest_interval="1h")
    outbox = Outbox(store, config)
    outbox.enqueue(notification(key="d1", severity="P3", summary="disk 80% full"),
                   channels=["slack", "pager"], now=clock.now())
    clock.advance(600)
    outbox.enqueue(notification(key="d2", severity="P3", summary="cert expires in 20 days"),
                   channels=["slack"], now=clock.now())
    slack, pager = ScriptedDriver("slack"), ScriptedDriver("pager")
    dispatcher = _dispatcher(store, config, clock, slack=slack, pager=pager)

    dispatcher.run_once(clock.now())
    assert slack.sent == [] and [n.key for n in pager.sent] == ["d1"]  # PagerDuty is not digested
    assert dispatcher.next_wakeup(clock.now()) == clock.now() + timedelta(seconds=3000)

    clock.advance(3000)
    report = dispatcher.run_once(clock.now())

    assert report.digests == 1
    [digest] = slack.sent
    assert digest.digest_of == ("d1", "d2")
    assert digest.summary == "2 low-severity notifications for orders"
    states = {key: state for channel, key, state in _states(store) if channel == "slack"}
    assert states["d1"] == states["d2"] == "digested"
    assert [s for k, s in states.items() if k.startswith("digest:")] == ["delivered"]


def test_a_row_claimed_by_a_dispatcher_that_died_is_sent_again_after_its_lease(sqlite_store: Store) -> None:
    clock = ManualClock()
    config = settings(CHANNELS)
    Outbox(sqlite_store, config).enqueue(notification(key="k"), channels=["pager"], now=clock.now())

    def die(n: Notification) -> SendResult:
        raise KeyboardInterrupt  # the process is killed mid-send

    with pytest.raises(KeyboardInterrupt):
        _dispatcher(sqlite_store, config, clock, pager=ScriptedDriver("pager", die)).run_once(clock.now())

    pager = ScriptedDriver("pager")
    restarted = _dispatcher(sqlite_store, config, clock, pager=pager)
    assert restarted.run_once(clock.now()).attempts == []  # still claimed
    clock.advance(45)  # timeout 10 s + lease margin 30 s
    restarted.run_once(clock.now())
    assert [n.key for n in pager.sent] == ["k"]
    with sqlite_store.session() as session:
        [row] = service.get_all(session)
        assert (row.state, row.attempts) == ("delivered", 2)


def test_a_channel_whose_secret_is_missing_is_retried_and_says_which_reference(sqlite_store: Store) -> None:
    clock = ManualClock()
    config = settings(CHANNELS)
    Outbox(sqlite_store, config).enqueue(notification(key="k"), channels=["pager"], now=clock.now())

    report = Dispatcher(sqlite_store, config, clock=clock, random_source=seeded()).run_once(clock.now())

    [attempt] = report.attempts
    assert attempt.outcome == "retry"
    assert "env:PD_KEY" in attempt.detail


def test_rows_queued_before_the_lanes_migration_keep_their_recipient(store: Store) -> None:
    from alembic import command
    from sqlalchemy import text

    from opsplane.store.db import alembic_config

    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0006")
    for key, to in (("call:ana", "+4915100000001"), ("post", None)):
        message = notification(key=key, group="incident:7", to=to)
        with store.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO notification_outbox (channel, key, group_key, status, severity, payload, state,"
                " attempts, created_at, next_attempt_at, last_error) VALUES ('pager', :key, 'incident:7',"
                " 'trigger', 'P1', :payload, 'pending', 0, :now, :now, '')"),
                {"key": key, "payload": message.model_dump_json(), "now": ManualClock().now()})
    store.upgrade()

    with store.session() as session:
        assert {row.key: row.recipient for row in service.get_all(session)} == {
            "call:ana": "+4915100000001", "post": ""}
