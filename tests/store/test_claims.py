"""Claims on work that must happen once, on SQLite and on a real PostgreSQL: one holder at a
time, taken over with a higher token once a lease runs out, and a holder that lost its claim
cannot record the outcome over the new holder's."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from opsplane.clock import ManualClock
from opsplane.store import Store, claims
from opsplane.store.claims import Claim, LeaseKeeper


def _take(store: Store, key: str, holder: str, now: datetime, lease: float = 30) -> Claim | None:
    with store.session() as session:
        return claims.take(session, key, holder=holder, now=now, lease=lease)


def test_one_holder_at_a_time_and_a_lapsed_claim_is_fenced(store: Store) -> None:
    clock = ManualClock()
    first = _take(store, "backup:2026-01-06", "serve-a", clock.now())
    assert first is not None and first.token == 1
    assert _take(store, "backup:2026-01-06", "serve-b", clock.now()) is None  # held
    clock.advance(29)
    assert _take(store, "backup:2026-01-06", "serve-b", clock.now()) is None  # held until 30 s
    clock.advance(1)
    second = _take(store, "backup:2026-01-06", "serve-b", clock.now())
    assert second is not None and second.token == 2 and second.holder == "serve-b"
    with store.session() as session:
        # the first holder came back (a long pause): its claim is gone, so is its outcome
        assert not claims.renew(session, first, clock.now())
        assert not claims.finish(session, first, clock.now())
    with store.session() as session:
        assert claims.finish(session, second, clock.now())
    clock.advance(3600)
    assert _take(store, "backup:2026-01-06", "serve-a", clock.now()) is None  # done: never again


def test_renewing_keeps_a_claim_and_releasing_frees_it_at_once(store: Store) -> None:
    clock = ManualClock()
    held = _take(store, "deploy:orders:3", "serve-a", clock.now(), lease=10)
    assert held is not None
    clock.advance(8)
    with store.session() as session:
        assert claims.renew(session, held, clock.now())
    assert held.until == clock.now() + timedelta(seconds=10)
    clock.advance(8)  # past the first lease, within the renewed one
    assert _take(store, "deploy:orders:3", "serve-b", clock.now()) is None
    with store.session() as session:
        assert claims.release(session, held, clock.now())
    taken = _take(store, "deploy:orders:3", "serve-b", clock.now())
    assert taken is not None and taken.token == 2


def test_of_many_taking_a_new_key_at_once_exactly_one_holds_it(store: Store) -> None:
    now = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)
    start = threading.Barrier(6)
    taken: list[Claim | None] = []

    def contender(n: int) -> None:
        start.wait()
        try:
            taken.append(_take(store, "escalation:7:P1:300", f"serve-{n}", now))
        except Exception as exc:  # a lost race on SQLite's lock is not a second holder
            taken.append(None)
            assert "locked" in str(exc), exc

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len([claim for claim in taken if claim is not None]) == 1


def test_the_keeper_renews_a_claim_whose_work_outlasts_its_lease(store: Store) -> None:
    def renew(claim: Claim, now: datetime) -> bool:
        with store.session() as session:
            return claims.renew(session, claim, now)

    now = lambda: datetime.now(UTC)  # noqa: E731 - the keeper runs on real time
    held = _take(store, "backup:nightly", "serve-a", now(), lease=0.6)
    assert held is not None
    first_until = held.until
    keeper: LeaseKeeper[Claim] = LeaseKeeper(renew, now=now, renew_within=0.4, check_every=0.05)
    try:
        with keeper.holding(held):
            deadline = time.monotonic() + 1.5  # well past the first lease
            while time.monotonic() < deadline:
                assert _take(store, "backup:nightly", "serve-b", now(), lease=0.6) is None
                time.sleep(0.1)
    finally:
        keeper.close()
    # the work is over: nothing renews the claim any more, so once its last lease runs out
    # another holder gets it
    with store.session() as session:
        row = session.get(claims.WorkClaim, "backup:nightly")
        assert row is not None
        last_until = row.expires_at
    assert last_until > first_until  # renewed while the work ran
    assert _take(store, "backup:nightly", "serve-b", last_until - timedelta(milliseconds=1)) is None
    assert _take(store, "backup:nightly", "serve-b", last_until) is not None
