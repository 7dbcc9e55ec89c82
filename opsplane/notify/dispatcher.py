"""Delivering the outbox: each lane in order, each channel within its rate and its receiver's
throttling, retried with back-off, every attempt recorded.

`Dispatcher.run_once()` does one pass and returns what it did; the caller owns the loop
(`next_wakeup()` says when a pass next has something to send) and injects the clock (tests
pass a ManualClock and a seeded random source). What may be sent is `notify.lanes`' call: a
row waits only for the earlier rows of its lane (channel, group, recipient) and for its own
channel. Each row is claimed in its own committed transaction at the moment it is sent, kept
claimed while the send runs (`notify.leases`), and marked with the outcome at the moment the
answer came, so two dispatchers never send one row at once, and after a crash only a row that
was being sent at that moment can be sent again (with the same idempotency key; see
docs/decisions/0008-notification-outbox.md). A row a withdrawal covers (`service.withdraw`:
an incident's pages once it was acknowledged) is never claimed: the claim's UPDATE checks for
one, so a withdrawal committed at any moment before the claim keeps the row from going out,
and a claimed row that was not delivered is withdrawn rather than tried again.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, select, update
from sqlalchemy.orm import Session

from opsplane.clock import Clock, SystemClock
from opsplane.drivers.channels.base import ChannelDriver, Outcome, SendResult
from opsplane.errors import OpsplaneError
from opsplane.events import service as events
from opsplane.notify import lanes, service
from opsplane.notify.backoff import retry_delay
from opsplane.notify.digest import build_digest
from opsplane.notify.leases import Claim, LeaseKeeper
from opsplane.notify.models import Channel, ChannelsSettings, Notification
from opsplane.notify.service import ACTOR, insert_row
from opsplane.notify.tables import OutboxRow
from opsplane.store import Store

log = logging.getLogger(__name__)

ChannelOpener = Callable[[str, Channel], ChannelDriver]
_RATE_WINDOW = timedelta(minutes=1)
# how long a claim lasts beyond its channel's timeout: a dispatcher that died mid-send leaves
# the row to be tried again after this; a live one renews it when half of it is left
_LEASE_MARGIN = 30.0
_DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Attempt:
    row_id: int
    channel: str
    key: str
    outcome: str  # delivered, retry, failed, dead; withdrawn (not sent, or not sent again)
    detail: str
    at: datetime | None = None  # when the answer came (or the send gave up)


@dataclass
class DispatchReport:
    """What one pass did."""

    attempts: list[Attempt] = field(default_factory=list)
    digests: int = 0
    waiting_for_rate: set[int] = field(default_factory=set)  # rows due but over their channel's rate
    # channels whose receiver hung (a failed attempt that took half its timeout or more): the
    # rest of their rows waited for the next pass rather than each costing a timeout
    resting: set[str] = field(default_factory=set)

    @property
    def rate_limited(self) -> int:
        return len(self.waiting_for_rate)

    def count(self, outcome: str) -> int:
        return sum(1 for attempt in self.attempts if attempt.outcome == outcome)


@dataclass
class _Pass:
    """What a pass learns about its channels as it goes."""

    holds: dict[str, lanes.Hold]
    resting: set[str] = field(default_factory=set)

    def waits(self, channel: str, at: datetime) -> bool:
        hold = self.holds.get(channel)
        return channel in self.resting or (hold is not None and hold.until > at)


def _default_opener(name: str, settings: Channel) -> ChannelDriver:
    from opsplane.drivers.channels.registry import open_channel

    return open_channel(name, settings)


class Dispatcher:
    """Sends what the outbox holds. Blocking I/O: in the control plane it runs in a worker thread.

    `batch` is the most rows a pass considers per channel at a time, `max_rounds` how often a
    pass looks again for rows its own deliveries freed, `lease_check` how often (seconds of
    real time) the claims of sends in flight are looked at for renewal.
    """

    def __init__(
        self,
        store: Store,
        settings: ChannelsSettings,
        *,
        clock: Clock | None = None,
        opener: ChannelOpener = _default_opener,
        random_source: Callable[[], float] | None = None,
        batch: int = 200,
        max_rounds: int = 10,
        lease_check: float = 1.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock or SystemClock()
        self._time: Callable[[], datetime] = self._clock.now
        self._opener = opener
        self._random = random_source or random.Random().random
        self._batch = batch
        self._max_rounds = max_rounds
        self._drivers: dict[str, ChannelDriver] = {}
        self._recent: dict[str, deque[datetime]] | None = None  # attempt times in the last minute
        self._keeper = LeaseKeeper(self._renew, now=lambda: self._time(), renew_within=_LEASE_MARGIN / 2,
                                   check_every=lease_check, what="outbox row", thread_name="outbox-leases")

    def run_once(self, now: datetime | None = None, *, only: Collection[int] | None = None) -> DispatchReport:
        """One pass: build the digests that are due, then try each row that may be sent once
        (of `only`, when given: `opsplane notify test` sends its own row and nothing else).

        Every step is timed when it happens: from `now` on by the clock's own progress, or by
        the clock alone when `now` is not given. A pass may last minutes; a Retry-After or a
        claim counted from its start would already be over."""
        self._time = self._timer(now)
        report = DispatchReport()
        report.digests = self._build_digests(self._time())
        with self.store.session() as session:
            state = _Pass(lanes.holds(session))
        recent = self._rate_windows(self._time())
        # a round that finished a row may have freed the next row of its lane
        for _ in range(self._max_rounds):
            if not self._round(state, recent, report, only):
                break
        return report

    def _timer(self, now: datetime | None) -> Callable[[], datetime]:
        if now is None:
            return self._clock.now
        start = self._clock.monotonic()
        return lambda: now + timedelta(seconds=self._clock.monotonic() - start)

    def _round(self, state: _Pass, recent: dict[str, deque[datetime]], report: DispatchReport,
               only: Collection[int] | None) -> int:
        """Try each row that may be sent once; the number delivered, failed or dead."""
        finished = 0
        now = self._time()
        skip = state.resting | {channel for channel in state.holds if state.waits(channel, now)}
        with self.store.session() as session:
            rows = lanes.due(session, now=now, per_channel=self._batch, skip=skip, only=only)
        for row_id, channel in rows:
            at = self._time()
            if state.waits(channel, at):  # throttled or hanging since this round began
                continue
            window = recent.setdefault(channel, deque())
            while window and window[0] <= at - _RATE_WINDOW:
                window.popleft()
            settings = self.settings.named.get(channel)
            if settings is not None and len(window) >= settings.rate_per_minute:
                report.waiting_for_rate.add(row_id)
                continue
            claim = self._claim(row_id, at)
            if claim is None:
                continue  # another dispatcher took it
            if isinstance(claim, Attempt):  # withdrawn: nothing sent, its lane is free
                report.attempts.append(claim)
                finished += 1
                continue
            window.append(at)
            with self._keeper.holding(claim):
                result = self._send(channel, claim.notification)
            answered = self._time()
            attempt = self._finish(claim, result, answered, state)
            report.attempts.append(attempt)
            if attempt.outcome == "retry" and answered - at >= timedelta(seconds=self._timeout(channel) / 2):
                # the receiver hangs: its other rows wait for the next pass instead of each
                # holding up every other channel for a timeout
                state.resting.add(channel)
                report.resting.add(channel)
            finished += attempt.outcome != "retry"
        return finished

    def next_wakeup(self, now: datetime | None = None) -> datetime | None:
        """When a pass next has something to send (a lane's next row falls due, a channel's
        hold or rate allows it, a digest is due), for a loop to sleep until; None if the
        outbox holds nothing open. Rows waiting behind another row of their lane, on a held
        channel or over a channel's rate do not make it earlier, so a loop that sleeps until
        then does not spin while a receiver is down."""
        now = now or self._clock.now()
        with self.store.session() as session:
            heads = lanes.next_due(session)
            holds = lanes.holds(session)
            held = session.scalar(select(OutboxRow.created_at).where(OutboxRow.state == "held")
                                  .order_by(OutboxRow.created_at).limit(1))
        recent = self._rate_windows(now)
        times = [self._ready(channel, at, holds.get(channel), recent.get(channel), now)
                 for channel, at in heads.items()]
        if held is not None:
            times.append(held + timedelta(seconds=self.settings.digest_interval))
        return min(times) if times else None

    def _ready(self, channel: str, at: datetime, hold: lanes.Hold | None, window: deque[datetime] | None,
               now: datetime) -> datetime:
        """When `channel` may send a row that falls due at `at`."""
        if hold is not None and hold.until > at:
            at = hold.until
        settings = self.settings.named.get(channel)
        if settings is not None and window:
            while window and window[0] <= now - _RATE_WINDOW:
                window.popleft()
            over = len(window) - settings.rate_per_minute
            if over >= 0:  # the minute's allowance is spent: free when its oldest attempts age out
                at = max(at, window[over] + _RATE_WINDOW)
        return at

    def close(self) -> None:
        self._keeper.close()
        for driver in self._drivers.values():
            driver.close()
        self._drivers.clear()

    # --- one row ------------------------------------------------------------------------

    def _rate_windows(self, now: datetime) -> dict[str, deque[datetime]]:
        """Attempt times per channel in the last minute; read from the store once, so a
        restarted dispatcher does not start with a fresh allowance."""
        if self._recent is None:
            self._recent = {}
            query = (select(OutboxRow.channel, OutboxRow.last_attempt_at)
                     .where(OutboxRow.last_attempt_at > now - _RATE_WINDOW)
                     .order_by(OutboxRow.last_attempt_at))
            with self.store.session() as session:
                for channel, at in session.execute(query):
                    if at is not None:
                        self._recent.setdefault(channel, deque()).append(at)
        return self._recent

    def _timeout(self, channel: str) -> float:
        settings = self.settings.named.get(channel)
        return settings.timeout if settings is not None else _DEFAULT_TIMEOUT

    def _claim(self, row_id: int, at: datetime) -> Claim | Attempt | None:
        """Mark the row as being sent (attempts + 1, not due again until the lease from `at`
        ends) in a committed transaction; None when it is no longer pending and due. A row a
        withdrawal covers is withdrawn instead (the Attempt says so)."""
        with self.store.session() as session:
            row = session.get(OutboxRow, row_id)
            if row is None or row.state != "pending" or row.next_attempt_at > at:
                return None
            current = (OutboxRow.id == row_id, OutboxRow.state == "pending",
                       OutboxRow.attempts == row.attempts, OutboxRow.next_attempt_at <= at)
            lease = self._timeout(row.channel) + _LEASE_MARGIN
            until = at + timedelta(seconds=lease)
            # the conditions again in the UPDATE: of two dispatchers that read the row at once,
            # only the first to write claims it; and no row a withdrawal covers is claimed,
            # however late the withdrawal committed before this statement
            claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(OutboxRow)
                .where(*current, ~service.covered_by_withdrawal())
                .values(attempts=row.attempts + 1, last_attempt_at=at, next_attempt_at=until,
                        sending_since=at)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount:
                return Claim(row_id, row.channel, row.attempts + 1, lease, until,
                             Notification.model_validate(row.payload))
            reason = service.withdrawal_of(session, group=row.group_key, key=row.key)
            if reason is not None:
                return self._withdraw_unsent(session, row, current, reason, at)
            return None  # another dispatcher took it

    def _withdraw_unsent(self, session: Session, row: OutboxRow, current: tuple[ColumnElement[bool], ...],
                         reason: str, at: datetime) -> Attempt | None:
        """Withdraw a row a withdrawal covers at the moment it would have been claimed: it was
        queued by a writer that had not seen the withdrawal, or its earlier send (in flight
        when the withdrawal came) ended with its claim lapsed."""
        withdrawn: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(OutboxRow).where(*current)
            .values(state="withdrawn", reason=reason[:500], finished_at=at, sending_since=None)
            .execution_options(synchronize_session=False)
        )
        if not withdrawn.rowcount:
            return None
        service.record_withdrawn(session, row, reason=reason, at=at)
        return Attempt(row.id, row.channel, row.key, "withdrawn", reason, at)

    def _renew(self, claim: Claim, now: datetime) -> bool:
        """Extend a claim whose send still runs; False when the row is no longer ours."""
        with self.store.session() as session:
            renewed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(OutboxRow)
                .where(OutboxRow.id == claim.row_id, OutboxRow.state == "pending",
                       OutboxRow.attempts == claim.attempt)
                .values(next_attempt_at=now + timedelta(seconds=claim.lease))
                .execution_options(synchronize_session=False)
            )
            return bool(renewed.rowcount)

    def _send(self, channel: str, notification: Notification) -> SendResult:
        settings = self.settings.named.get(channel)
        if settings is None:
            return SendResult(Outcome.RETRY, f"channel {channel!r} is not in the inventory")
        try:
            driver = self._drivers.get(channel) or self._open(channel, settings)
            return driver.send(notification)
        except OpsplaneError as exc:  # a secret that cannot be read: fixable, so retried
            return SendResult(Outcome.RETRY, str(exc))
        except Exception as exc:  # a fault of ours must not stop the other channels
            log.exception("channel %s failed to send %s", channel, notification.key)
            return SendResult(Outcome.RETRY, f"internal error: {type(exc).__name__}")

    def _open(self, channel: str, settings: Channel) -> ChannelDriver:
        driver = self._opener(channel, settings)
        self._drivers[channel] = driver
        return driver

    def _finish(self, claim: Claim, result: SendResult, at: datetime, state: _Pass) -> Attempt:
        """Record the attempt's outcome, answered at `at`, in the row, the channel's hold and
        the event log, in one transaction."""
        with self.store.session() as session:
            row = session.get(OutboxRow, claim.row_id)
            if row is None:
                raise OpsplaneError(f"outbox row {claim.row_id} vanished while it was being sent")
            not_before = None
            if result.throttled:
                not_before = self._throttle(session, claim.channel, result, at, state)
            elif result.outcome is Outcome.DELIVERED and claim.channel in state.holds:
                lanes.release(session, channel=claim.channel, answered_at=at)
                del state.holds[claim.channel]
            ours = row.state == "pending" and row.attempts == claim.attempt
            delivered = result.outcome is Outcome.DELIVERED
            # to be tried again, but a withdrawal came while it was being sent: it is not
            withdrawn = service.withdrawal_of(session, group=row.group_key, key=row.key) \
                if ours and result.outcome is Outcome.RETRY else None
            details: dict[str, object] = {
                "channel": row.channel, "key": row.key, "group": row.group_key,
                "status": row.status, "severity": row.severity, "attempt": claim.attempt,
                "detail": result.detail,
            }
            # a delivery ends the row whoever holds it now (and even if it was withdrawn once
            # our claim had lapsed: it did reach the receiver); any other answer is left to the
            # dispatcher the claim passed to (ours ran out while the store was out of reach)
            if ours or (delivered and row.state in ("pending", "withdrawn")):
                outcome = self._apply(row, result, at, not_before, withdrawn)
            else:
                outcome = result.outcome.value
                details["claim"] = "lost"
            if result.status is not None:
                details["http_status"] = result.status
            if outcome == "retry" and ours:
                details["next_attempt_at"] = row.next_attempt_at.isoformat()
            if not_before is not None:
                details["channel_held_until"] = not_before.isoformat()
            if outcome == "withdrawn":
                details["reason"] = row.reason
            events.record(session, kind=f"notify.{outcome}", actor=ACTOR,
                          target=f"{row.channel}:{row.key}", outcome=outcome,
                          service=row.payload.get("service"), details=details, ts=at)
            return Attempt(row.id, row.channel, row.key, outcome, result.detail, at)

    def _throttle(self, session: Session, channel: str, result: SendResult, at: datetime,
                  state: _Pass) -> datetime:
        """Hold the channel from `at`: for the receiver's Retry-After, else for a back-off that
        grows with each 429 in a row. Returns the end of the hold."""
        previous = state.holds.get(channel)
        strikes = previous.strikes + 1 if previous is not None else 1
        wait = result.retry_after
        if wait is None:
            wait = retry_delay(strikes, self.settings.retry, jitter=self._random())
        until = at + timedelta(seconds=wait)
        state.holds[channel] = lanes.hold(session, channel=channel, until=until, strikes=strikes,
                                          reason=result.detail)
        return until

    def _apply(self, row: OutboxRow, result: SendResult, at: datetime, not_before: datetime | None,
               withdrawn: str | None) -> str:
        row.last_error = "" if result.outcome is Outcome.DELIVERED else result.detail
        row.sending_since = None
        if result.outcome is Outcome.DELIVERED:
            row.state, row.finished_at, row.reason = "delivered", at, ""
            return "delivered"
        if result.outcome is Outcome.FAILED:
            row.state, row.finished_at = "failed", at
            return "failed"
        if withdrawn is not None:
            row.state, row.finished_at, row.reason = "withdrawn", at, withdrawn[:500]
            return "withdrawn"
        delay = retry_delay(row.attempts, self.settings.retry, jitter=self._random(),
                            retry_after=result.retry_after)
        next_at = at + timedelta(seconds=delay)
        if not_before is not None and not_before > next_at:
            next_at = not_before
        if next_at - row.created_at > timedelta(seconds=self.settings.retry.give_up_after):
            row.state, row.finished_at = "dead", at
            return "dead"
        row.next_attempt_at = next_at
        return "retry"

    def _build_digests(self, now: datetime) -> int:
        """Fold each channel's held P3 rows into one digest row once the oldest has waited
        `digest_interval`."""
        cutoff = now - timedelta(seconds=self.settings.digest_interval)
        built = 0
        with self.store.session() as session:
            channels = session.scalars(select(OutboxRow.channel).distinct()
                                       .where(OutboxRow.state == "held",
                                              OutboxRow.created_at <= cutoff)).all()
            for channel in channels:
                built += self._digest_channel(session, channel, now)
        return built

    def _withdrawn_held(self, session: Session, row: OutboxRow, now: datetime) -> bool:
        """Withdraw a held row a withdrawal covers (queued by a writer that had not seen it)
        rather than fold it into a digest."""
        reason = service.withdrawal_of(session, group=row.group_key, key=row.key)
        if reason is None:
            return False
        row.state, row.reason, row.finished_at = "withdrawn", reason[:500], now
        service.record_withdrawn(session, row, reason=reason, at=now)
        return True

    def _digest_channel(self, session: Session, channel: str, now: datetime) -> int:
        held = session.scalars(select(OutboxRow).where(OutboxRow.channel == channel,
                                                       OutboxRow.state == "held")
                               .order_by(OutboxRow.id)).all()
        held = [row for row in held if not self._withdrawn_held(session, row, now)]
        if not held:
            return 0
        items = [Notification.model_validate(row.payload) for row in held]
        digest = build_digest(channel, items, first_id=held[0].id, last_id=held[-1].id,
                              since=held[0].created_at)
        enqueued = insert_row(session, digest, channel, now, "pending")
        for row in held:
            row.state, row.digest_id, row.finished_at = "digested", enqueued.row_id, now
        events.record(session, kind="notify.digest", actor=ACTOR, target=f"{channel}:{digest.key}",
                      outcome="queued", ts=now,
                      details={"channel": channel, "key": digest.key, "count": len(held)})
        return 1


def drivers_from(mapping: Mapping[str, ChannelDriver]) -> ChannelOpener:
    """An opener that hands out ready-made drivers by channel name (tests, the benchmark)."""

    def opener(name: str, settings: Channel) -> ChannelDriver:
        return mapping[name]

    return opener
