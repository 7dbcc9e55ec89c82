"""The lease keeper: a renewal never lands after the send it kept alive has ended."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from opsplane.notify.leases import Claim, LeaseKeeper
from tests.notify.factories import notification

START = datetime(2026, 1, 6, 10, 0, tzinfo=UTC)


def test_a_send_that_ends_while_its_claim_is_being_renewed_waits_for_the_renewal() -> None:
    # The outcome of a send is written once `holding` returns. A renewal still being written
    # then would land after it and replace the row's retry time with the end of a lease.
    renewing, release = threading.Event(), threading.Event()
    order: list[str] = []

    def renew(claim: Claim, now: datetime) -> bool:
        renewing.set()
        release.wait(10)
        order.append("renewed")
        return True

    keeper = LeaseKeeper(renew, now=lambda: START, renew_within=30, check_every=0.01)
    claim = Claim(1, "pager", 1, lease=40, until=START + timedelta(seconds=10),
                  notification=notification(key="k"))
    ended = threading.Event()

    def send() -> None:
        with keeper.holding(claim):
            assert renewing.wait(10), "the keeper never renewed the expiring claim"
        order.append("send ended")
        ended.set()

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert renewing.wait(10)
        assert not ended.wait(0.2), "the send ended while its renewal was still being written"
    finally:
        release.set()
        sender.join(10)
        keeper.close()

    assert order == ["renewed", "send ended"]

