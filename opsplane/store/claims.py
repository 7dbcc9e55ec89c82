"""Claims: work that must happen once, taken from the store by one holder until its lease ends.

A worker that must do something once for the whole platform (a scheduled backup, a deploy
step, an escalation step) takes a claim on the work's key before doing it. The claim records
its holder, its expiry and a token that grows with every new holder (a fencing token: decision
0023). While the work runs, a `LeaseKeeper` renews the claim; when the holder dies, renewal
stops and the lease runs out, and the next holder takes the claim over with a higher token.
Writing the outcome (`finish`) checks the token: a holder whose claim was taken over learns
that it lost it and must not record an outcome over the new holder's.

Claims on rows that carry their own claim columns (the outbox's: `notify.dispatcher`) use the
same `LeaseKeeper`; claims on anything else are rows of `work_claims`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import BigInteger, String, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from opsplane.store.base import Base, UTCDateTime

log = logging.getLogger(__name__)


class WorkClaim(Base):
    """Who holds the work named `key`, until when, under which token; `done_at` once done."""

    __tablename__ = "work_claims"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(BigInteger)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass
class Claim:
    """A claim held on `key`: `token` fences it (a later holder has a higher one)."""

    key: str
    holder: str
    token: int
    lease: float  # seconds a claim (or a renewal) lasts
    until: datetime


def take(session: Session, key: str, *, holder: str, now: datetime, lease: float) -> Claim | None:
    """Claim `key` for `holder` until `now + lease`: when nobody claimed it yet or its last
    holder's lease ran out, and it is not done. None when another holds it or it is done.
    Committed by the caller's session; each claim wants a transaction of its own."""
    until = now + timedelta(seconds=lease)
    taken: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(WorkClaim)
        .where(WorkClaim.key == key, WorkClaim.done_at.is_(None), WorkClaim.expires_at <= now)
        .values(holder=holder, token=WorkClaim.token + 1, claimed_at=now, expires_at=until))
    if taken.rowcount:
        token = session.scalar(select(WorkClaim.token).where(WorkClaim.key == key))
        assert token is not None
        return Claim(key, holder, token, lease, until)
    if session.get(WorkClaim, key) is not None:
        return None  # held by another, or done
    try:
        with session.begin_nested():  # another may insert it first: then it holds the claim
            session.execute(insert(WorkClaim).values(key=key, holder=holder, token=1, claimed_at=now,
                                                     expires_at=until))
    except IntegrityError:
        return None
    return Claim(key, holder, 1, lease, until)


def renew(session: Session, claim: Claim, now: datetime) -> bool:
    """Extend `claim` from `now`; False when it is no longer held under its token."""
    until = now + timedelta(seconds=claim.lease)
    kept: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(WorkClaim)
        .where(WorkClaim.key == claim.key, WorkClaim.token == claim.token, WorkClaim.done_at.is_(None))
        .values(expires_at=until))
    if kept.rowcount:
        claim.until = until
    return bool(kept.rowcount)


def finish(session: Session, claim: Claim, now: datetime) -> bool:
    """Mark the work done; False when the claim was taken over meanwhile (its outcome is the
    new holder's to record)."""
    done: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(WorkClaim)
        .where(WorkClaim.key == claim.key, WorkClaim.token == claim.token, WorkClaim.done_at.is_(None))
        .values(done_at=now))
    return bool(done.rowcount)


def release(session: Session, claim: Claim, now: datetime) -> bool:
    """Give the claim up without doing the work: the next `take` gets it at once."""
    freed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(WorkClaim)
        .where(WorkClaim.key == claim.key, WorkClaim.token == claim.token, WorkClaim.done_at.is_(None))
        .values(expires_at=now))
    return bool(freed.rowcount)


class Held(Protocol):
    """What a `LeaseKeeper` keeps alive: a claim with a key, a lease and an expiry."""

    @property
    def key(self) -> Hashable: ...
    @property
    def lease(self) -> float: ...

    until: datetime


H = TypeVar("H", bound=Held)
Renew = Callable[[H, datetime], bool]  # extend the claim from `now`; False when it was lost


class LeaseKeeper(Generic[H]):
    """Renews the claims of work in flight once less than `renew_within` seconds of their
    lease are left, checking every `check_every` seconds (real time) on a thread of its own,
    started with the first claim held. `what` names the claims in its log lines."""

    def __init__(self, renew: Callable[[H, datetime], bool], *, now: Callable[[], datetime],
                 renew_within: float, check_every: float = 1.0, what: str = "work",
                 thread_name: str = "claim-leases") -> None:
        self._renew = renew
        self._now = now
        self._within = timedelta(seconds=renew_within)
        self._every = check_every
        self._what = what
        self._thread_name = thread_name
        self._held: dict[Hashable, H] = {}
        self._renewing: set[Hashable] = set()  # claims whose renewal is being written now
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def holding(self, claim: H) -> Iterator[None]:
        """Keep `claim` alive for the duration of the block (the work)."""
        with self._wake:
            self._held[claim.key] = claim
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
                self._thread.start()
            self._wake.notify_all()
        try:
            yield
        finally:
            with self._wake:
                self._held.pop(claim.key, None)
                # A renewal written after the work's outcome would overwrite it with the end of
                # a lease: the outcome waits for one in progress.
                while claim.key in self._renewing:
                    self._wake.wait()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._closed:
                    return
                # nothing in flight: sleep until a claim is held
                self._wake.wait(self._every if self._held else None)
                if self._closed:
                    return
                now = self._now()
                expiring = [c for c in self._held.values() if c.until - now <= self._within]
            for claim in expiring:
                with self._wake:
                    if claim.key not in self._held:  # its work ended meanwhile
                        continue
                    self._renewing.add(claim.key)
                try:
                    kept = self._renew(claim, now)
                except Exception:  # the store is out of reach: try again at the next check
                    log.warning("could not renew the claim on %s %s", self._what, claim.key, exc_info=True)
                    continue
                finally:
                    with self._wake:
                        self._renewing.discard(claim.key)
                        self._wake.notify_all()
                with self._wake:
                    if not kept:  # taken over (the store was out of reach too long): stop
                        self._held.pop(claim.key, None)
                    else:
                        claim.until = now + timedelta(seconds=claim.lease)
