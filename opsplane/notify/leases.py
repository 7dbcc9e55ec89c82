"""Claims on outbox rows, and a keeper that stops them lapsing while their send still runs.

A dispatcher claims a row before it sends it: the row's `next_attempt_at` moves to the end of
a lease (the channel's timeout plus a margin, from the moment of the claim), and another
dispatcher takes the row only once that has passed. A send may outlast its lease (an SMTP
server that answers each step just within the timeout, a slow body): the keeper renews the
claims of the sends in flight, so a second dispatcher never sends a row whose first send is
still running. When the process dies, renewal stops with it and the lease runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsplane.notify.models import Notification

log = logging.getLogger(__name__)


@dataclass
class Claim:
    """A row a dispatcher holds: its attempt number is the claim's token."""

    row_id: int
    channel: str
    attempt: int
    lease: float  # seconds a claim (or a renewal) lasts
    until: datetime
    notification: Notification


Renew = Callable[[Claim, datetime], bool]  # extend the claim from `now`; False when it was lost


class LeaseKeeper:
    """Renews the claims of sends in flight once less than `renew_within` seconds of their
    lease are left, checking every `check_every` seconds (real time) on a thread of its own,
    started with the first send."""

    def __init__(self, renew: Renew, *, now: Callable[[], datetime], renew_within: float,
                 check_every: float = 1.0) -> None:
        self._renew = renew
        self._now = now
        self._within = timedelta(seconds=renew_within)
        self._every = check_every
        self._held: dict[int, Claim] = {}
        self._renewing: set[int] = set()  # claims whose renewal is being written now
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def holding(self, claim: Claim) -> Iterator[None]:
        """Keep `claim` alive for the duration of the block (the send)."""
        with self._wake:
            self._held[claim.row_id] = claim
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outbox-leases", daemon=True)
                self._thread.start()
            self._wake.notify_all()
        try:
            yield
        finally:
            with self._wake:
                self._held.pop(claim.row_id, None)
                # A renewal written after the send's outcome would overwrite the row's retry
                # time with the end of a lease: the outcome waits for one in progress.
                while claim.row_id in self._renewing:
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
                # nothing in flight: sleep until a send starts
                self._wake.wait(self._every if self._held else None)
                if self._closed:
                    return
                now = self._now()
                expiring = [c for c in self._held.values() if c.until - now <= self._within]
            for claim in expiring:
                with self._wake:
                    if claim.row_id not in self._held:  # its send ended meanwhile
                        continue
                    self._renewing.add(claim.row_id)
                try:
                    kept = self._renew(claim, now)
                except Exception:  # the store is out of reach: try again at the next check
                    log.warning("could not renew the claim on outbox row %d", claim.row_id, exc_info=True)
                    continue
                finally:
                    with self._wake:
                        self._renewing.discard(claim.row_id)
                        self._wake.notify_all()
                with self._wake:
                    if not kept:  # taken over (the store was out of reach too long): stop
                        self._held.pop(claim.row_id, None)
                    else:
                        claim.until = now + timedelta(seconds=claim.lease)
