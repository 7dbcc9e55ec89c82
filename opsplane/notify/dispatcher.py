"""Delivering the outbox: due rows, in order per group, within each channel's rate, retried
with back-off, every attempt recorded.

`Dispatcher.run_once(now)` does one pass and returns what it did; the caller owns the loop
and the clock (tests pass a ManualClock's time and a seeded random source). A row is claimed
in its own committed transaction before it is sent and marked right after, so two
dispatchers never send the same row at once, and after a crash only a row that was being
sent at that moment can be sent again (with the same idempotency key; see
docs/decisions/0006-notification-outbox.md).
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, exists, select, update
from sqlalchemy.orm import Session, aliased

from opsplane.drivers.channels.base import ChannelDriver, Outcome, SendResult
from opsplane.errors import OpsplaneError
from opsplane.events import service as events
from opsplane.notify.backoff import retry_delay
from opsplane.notify.digest import build_digest
from opsplane.notify.models import Channel, ChannelsSettings, Notification
from opsplane.notify.service import ACTOR, insert_row
from opsplane.notify.tables import OutboxRow
from opsplane.store import Store

log = logging.getLogger(__name__)

ChannelOpener = Callable[[str, Channel], ChannelDriver]
_RATE_WINDOW = timedelta(minutes=1)
# how long a claimed row stays claimed beyond its channel's timeout: a dispatcher that died
# mid-send leaves the row to be tried again after this
_LEASE_MARGIN = 30.0


@dataclass(frozen=True)
class Attempt:
    row_id: int
    channel: str
    key: str
    outcome: str  # delivered, retry, failed, dead
    detail: str


@dataclass
class DispatchReport:
    """What one pass did."""

    attempts: list[Attempt] = field(default_factory=list)
    digests: int = 0
    waiting_for_rate: set[int] = field(default_factory=set)  # rows due but over their channel's rate

    @property
    def rate_limited(self) -> int:
        return len(self.waiting_for_rate)

    def count(self, outcome: str) -> int:
        return sum(1 for attempt in self.attempts if attempt.outcome == outcome)


def _default_opener(name: str, settings: Channel) -> ChannelDriver:
    from opsplane.drivers.channels.registry import open_channel

    return open_channel(name, settings)


class Dispatcher:
    """Sends what the outbox holds. Blocking I/O: in the control plane it runs in a worker thread."""

    def __init__(
        self,
        store: Store,
        settings: ChannelsSettings,
        *,
        opener: ChannelOpener = _default_opener,
        random_source: Callable[[], float] | None = None,
        batch: int = 200,
        max_rounds: int = 10,
    ) -> None:
        self.store = store
        self.settings = settings
        self._opener = opener
        self._random = random_source or random.Random().random
        self._batch = batch
        self._max_rounds = max_rounds
        self._drivers: dict[str, ChannelDriver] = {}
        self._recent: dict[str, deque[datetime]] | None = None  # attempt times in the last minute

    def run_once(self, now: datetime, *, only: Collection[int] | None = None) -> DispatchReport:
        """One pass: build the digests that are due, then try each due row once (of `only`,
        when given: `opsplane notify test` sends its own row and nothing else)."""
        report = DispatchReport()
        report.digests = self._build_digests(now)
        recent = self._rate_windows(now)
        # a round that finished a row may have freed the next message of its group
        for _ in range(self._max_rounds):
            finished = self._round(now, recent, report, only)
            if not finished:
                break
        return report

    def _round(self, now: datetime, recent: dict[str, deque[datetime]], report: DispatchReport,
               only: Collection[int] | None) -> int:
        """Try each due row once; the number delivered, failed or dead."""
        finished = 0
        for row_id, channel in self._due(now, only):
            window = recent.setdefault(channel, deque())
            while window and window[0] <= now - _RATE_WINDOW:
                window.popleft()
            settings = self.settings.named.get(channel)
            if settings is not None and len(window) >= settings.rate_per_minute:
                report.waiting_for_rate.add(row_id)
                continue
            claimed = self._claim(row_id, now)
            if claimed is None:
                continue  # another dispatcher took it
            window.append(now)
            result = self._send(channel, claimed)
            attempt = self._finish(row_id, result, now)
            report.attempts.append(attempt)
            finished += attempt.outcome != "retry"
        return finished

    def next_wakeup(self, now: datetime) -> datetime | None:
        """When a row next becomes due (a retry, a digest), for a loop to sleep until; None if
        the outbox holds nothing open."""
        with self.store.session() as session:
            pending = session.scalar(select(OutboxRow.next_attempt_at)
                                     .where(OutboxRow.state == "pending")
                                     .order_by(OutboxRow.next_attempt_at).limit(1))
            held = session.scalar(select(OutboxRow.created_at).where(OutboxRow.state == "held")
                                  .order_by(OutboxRow.created_at).limit(1))
        times = [t for t in (pending,) if t is not None]
        if held is not None:
            times.append(held + timedelta(seconds=self.settings.digest_interval))
        return min(times) if times else None

    def close(self) -> None:
        for driver in self._drivers.values():
            driver.close()
        self._drivers.clear()

    # --- one pass ------------------------------------------------------------------------

    def _due(self, now: datetime, only: Collection[int] | None = None) -> list[tuple[int, str]]:
        """Due pending rows that are first of their group: a later message of a group waits
        until every earlier one is delivered, failed or dead."""
        earlier = aliased(OutboxRow)
        blocked = exists().where(
            earlier.channel == OutboxRow.channel,
            earlier.group_key == OutboxRow.group_key,
            earlier.state == "pending",
            earlier.id < OutboxRow.id,
        )
        query = (select(OutboxRow.id, OutboxRow.channel)
                 .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now, ~blocked)
                 .order_by(OutboxRow.id).limit(self._batch))
        if only is not None:
            query = query.where(OutboxRow.id.in_(list(only)))
        with self.store.session() as session:
            return [(row_id, channel) for row_id, channel in session.execute(query)]

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

    def _claim(self, row_id: int, now: datetime) -> tuple[Notification, int] | None:
        """Mark the row as being sent (attempts + 1, not due again until the lease ends) in a
        committed transaction; None when it is no longer pending and due."""
        with self.store.session() as session:
            row = session.get(OutboxRow, row_id)
            if row is None or row.state != "pending" or row.next_attempt_at > now:
                return None
            settings = self.settings.named.get(row.channel)
            lease = (settings.timeout if settings else 10.0) + _LEASE_MARGIN
            claimed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(OutboxRow)
                .where(OutboxRow.id == row_id, OutboxRow.state == "pending",
                       OutboxRow.attempts == row.attempts)
                .values(attempts=row.attempts + 1, last_attempt_at=now,
                        next_attempt_at=now + timedelta(seconds=lease))
                .execution_options(synchronize_session=False)
            )
            if not claimed.rowcount:
                return None
            return Notification.model_validate(row.payload), row.attempts + 1

    def _send(self, channel: str, claimed: tuple[Notification, int]) -> SendResult:
        notification, _ = claimed
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

    def _finish(self, row_id: int, result: SendResult, now: datetime) -> Attempt:
        """Record the attempt's outcome in the row and the event log, in one transaction."""
        with self.store.session() as session:
            row = session.get(OutboxRow, row_id)
            if row is None:
                raise OpsplaneError(f"outbox row {row_id} vanished while it was being sent")
            outcome = self._apply(row, result, now)
            details: dict[str, object] = {
                "channel": row.channel, "key": row.key, "group": row.group_key,
                "status": row.status, "severity": row.severity, "attempt": row.attempts,
                "detail": result.detail,
            }
            if result.status is not None:
                details["http_status"] = result.status
            if outcome == "retry":
                details["next_attempt_at"] = row.next_attempt_at.isoformat()
            events.record(session, kind=f"notify.{outcome}", actor=ACTOR,
                          target=f"{row.channel}:{row.key}", outcome=outcome,
                          service=row.payload.get("service"), details=details, ts=now)
            return Attempt(row.id, row.channel, row.key, outcome, result.detail)

    def _apply(self, row: OutboxRow, result: SendResult, now: datetime) -> str:
        row.last_error = "" if result.outcome is Outcome.DELIVERED else result.detail
        if result.outcome is Outcome.DELIVERED:
            row.state, row.finished_at = "delivered", now
            return "delivered"
        if result.outcome is Outcome.FAILED:
            row.state, row.finished_at = "failed", now
            return "failed"
        delay = retry_delay(row.attempts, self.settings.retry, jitter=self._random(),
                            retry_after=result.retry_after)
        next_at = now + timedelta(seconds=delay)
        if next_at - row.created_at > timedelta(seconds=self.settings.retry.give_up_after):
            row.state, row.finished_at = "dead", now
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

    def _digest_channel(self, session: Session, channel: str, now: datetime) -> int:
        held = session.scalars(select(OutboxRow).where(OutboxRow.channel == channel,
                                                       OutboxRow.state == "held")
                               .order_by(OutboxRow.id)).all()
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
