"""Failed dashboard sign-ins: a limit per client address, and one event per address per window.

An address may fail `attempts` times within `window` (server.sign_in_attempts and
sign_in_window: 5 a minute unless the inventory says otherwise). The failure that reaches the
limit locks it out for the window; each lockout that follows another without a quiet spell in
between lasts twice as long, up to MAX_LOCKOUT. While locked out, its sign-ins are answered 429
with Retry-After and their tokens are not even looked at. Signing in successfully forgives
the address.

Failures are not written one event each: 200 wrong tokens in two seconds would push every
other event out of view. An address's failures are counted from its first one for a window,
and the count becomes one `ui.login_failed` event when the window ends ("12 failed sign-ins to
the dashboard from 127.0.0.1 in the last minute"). `serve` writes them as they fall due
(`keep_writing`) and writes what is left when it stops.

All of it lives in memory, bounded by MAX_CLIENTS addresses; time comes from the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsplane.clock import Clock
from opsplane.events import service as events
from opsplane.store import Store

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

MAX_LOCKOUT = 900.0  # seconds: the longest an address waits, however often it failed
MAX_CLIENTS = 10_000  # addresses tracked at once; beyond them, new ones share one count
OTHERS = "other addresses"
RETRY_SECONDS = 5.0  # after the store refused to record counts


@dataclass
class FailedSignIns:
    """One address's failed sign-ins within one window: what one event says."""

    client: str
    first_at: datetime
    last_at: datetime
    window: float
    count: int = 0  # every failed attempt: wrong tokens and those refused unread
    refused: int = 0  # of them, refused by the limit without being checked
    reasons: list[str] = field(default_factory=list)  # the checked ones', each once

    def details(self) -> dict[str, Any]:
        return {"client": self.client, "count": self.count, "refused": self.refused,
                "reason": "; ".join(self.reasons) or "too many failed sign-ins",
                "first_at": self.first_at.isoformat(), "last_at": self.last_at.isoformat(),
                "window_seconds": self.window}


@dataclass
class _Address:
    failures: deque[float] = field(default_factory=deque)  # monotonic times inside the window
    blocked_until: float = 0.0
    lockouts: int = 0  # in a row: each doubles the next one
    last_failure: float = -math.inf
    tally: FailedSignIns | None = None
    tally_ends: float = 0.0


class SignInLimiter:
    """The limit and the counts of failed sign-ins, per client address (module docstring)."""

    def __init__(self, clock: Clock, *, attempts: int = 5, window: float = 60.0,
                 max_lockout: float = MAX_LOCKOUT, max_clients: int = MAX_CLIENTS) -> None:
        self.clock, self.attempts, self.window = clock, attempts, window
        self.max_lockout, self.max_clients = max(max_lockout, window), max_clients
        self._addresses: dict[str, _Address] = {}
        self._lock = threading.Lock()
        self.on_count: Callable[[], None] | None = None  # told when a new count starts

    def retry_after(self, client: str) -> int | None:
        """Whole seconds until `client` may try again, counting this attempt as a refused
        failure; None when it may try now."""
        with self._lock:
            now = self.clock.monotonic()
            key = self._key(client)
            found = self._addresses.get(key)
            if found is None or found.blocked_until <= now:
                return None
            self._count(found, key, now, reason=None)
            return max(1, math.ceil(found.blocked_until - now))

    def failed(self, client: str, reason: str) -> None:
        """`client` gave a token that may not sign in, for `reason`."""
        with self._lock:
            now = self.clock.monotonic()
            key = self._key(client)
            address = self._addresses.setdefault(key, _Address())
            if now - address.last_failure > self.max_lockout:
                address.lockouts = 0  # a quiet spell forgives earlier lockouts
            address.last_failure = now
            while address.failures and address.failures[0] <= now - self.window:
                address.failures.popleft()
            address.failures.append(now)
            if len(address.failures) >= self.attempts:
                address.blocked_until = now + min(self.window * 2 ** address.lockouts, self.max_lockout)
                address.lockouts += 1
                address.failures.clear()
            self._count(address, key, now, reason=reason)

    def succeeded(self, client: str) -> None:
        """`client` signed in: its failures and lockouts are forgiven (not its count)."""
        with self._lock:
            address = self._addresses.get(self._key(client))
            if address is not None:
                address.failures.clear()
                address.lockouts = 0
                address.blocked_until = 0.0

    def due(self, *, everything: bool = False) -> list[FailedSignIns]:
        """The counts whose window has ended (all of them with `everything`), taken out, and
        addresses with nothing left to remember forgotten."""
        with self._lock:
            now = self.clock.monotonic()
            taken: list[FailedSignIns] = []
            for key, address in list(self._addresses.items()):
                if address.tally is not None and (everything or address.tally_ends <= now):
                    taken.append(address.tally)
                    address.tally = None
                if self._idle(address, now):
                    del self._addresses[key]
            return sorted(taken, key=lambda t: t.first_at)

    def next_due(self) -> float | None:
        """The monotonic time the next count falls due; None when nothing is counted."""
        with self._lock:
            ends = [a.tally_ends for a in self._addresses.values() if a.tally is not None]
            return min(ends, default=None)

    def _key(self, client: str) -> str:
        """`client`, or OTHERS once MAX_CLIENTS addresses are remembered (after forgetting
        idle ones): memory stays bounded whatever addresses a flood comes from."""
        if client in self._addresses or len(self._addresses) < self.max_clients:
            return client
        now = self.clock.monotonic()
        for key in [k for k, a in self._addresses.items() if self._idle(a, now)]:
            del self._addresses[key]
        return client if len(self._addresses) < self.max_clients else OTHERS

    def _idle(self, address: _Address, now: float) -> bool:
        return (address.tally is None and address.blocked_until <= now
                and now - address.last_failure > self.max_lockout)

    def _count(self, address: _Address, client: str, now: float, *, reason: str | None) -> None:
        at = self.clock.now()
        started = address.tally is None
        if address.tally is None:
            address.tally = FailedSignIns(client=client, first_at=at, last_at=at, window=self.window)
            address.tally_ends = now + self.window
        tally = address.tally
        tally.count += 1
        tally.last_at = at
        if reason is None:
            tally.refused += 1
        elif reason not in tally.reasons and len(tally.reasons) < 3:
            tally.reasons.append(reason)
        if started and self.on_count is not None:
            self.on_count()


def limiter_for(app: FastAPI) -> SignInLimiter:
    """The app's limiter, made on first use with the inventory's `server` settings."""
    limiter: SignInLimiter | None = getattr(app.state, "sign_ins", None)
    if limiter is None:
        plane = app.state.plane
        server = plane.inventory.server
        limiter = app.state.sign_ins = SignInLimiter(plane.clock, attempts=server.sign_in_attempts,
                                                     window=server.sign_in_window)
    return limiter


def write(store: Store, counts: list[FailedSignIns]) -> None:
    """One `ui.login_failed` event per count, at the time of its last failure."""
    if not counts:
        return
    with store.session() as session:
        for tally in counts:
            events.record(session, kind="ui.login_failed", actor="anonymous", target="dashboard",
                          outcome="denied", details=tally.details(), ts=tally.last_at)


async def keep_writing(limiter: SignInLimiter, store: Store) -> None:
    """Write each count when its window ends, until cancelled; then write what is left."""
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wake_up() -> None:
        loop.call_soon_threadsafe(wake.set)

    limiter.on_count = wake_up
    unwritten: list[FailedSignIns] = []
    try:
        while True:
            due = limiter.next_due()
            delay = None if due is None else max(0.0, due - limiter.clock.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
            wake.clear()
            unwritten += limiter.due()
            try:
                await asyncio.to_thread(write, store, unwritten)
                unwritten = []
            except Exception:  # the store may be down: kept, and tried again in a while
                log.exception("could not record %d counts of failed dashboard sign-ins", len(unwritten))
                await asyncio.sleep(RETRY_SECONDS)
    finally:
        limiter.on_count = None
        write(store, unwritten + limiter.due(everything=True))
