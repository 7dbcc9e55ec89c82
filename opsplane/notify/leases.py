"""Claims on outbox rows, kept from lapsing while their send still runs.

A dispatcher claims a row before it sends it: the row's `next_attempt_at` moves to the end of
a lease (the channel's timeout plus a margin, from the moment of the claim), and another
dispatcher takes the row only once that has passed. The row's attempt number is the claim's
fencing token. A send may outlast its lease (an SMTP server that answers each step just
within the timeout, a slow body): the keeper (`store.claims.LeaseKeeper`, shared with every
other kind of claim) renews the claims of the sends in flight, so a second dispatcher never
sends a row whose first send is still running. When the process dies, renewal stops with it
and the lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opsplane.notify.models import Notification
from opsplane.store.claims import LeaseKeeper

__all__ = ["Claim", "LeaseKeeper"]


@dataclass
class Claim:
    """A row a dispatcher holds: its attempt number is the claim's token."""

    row_id: int
    channel: str
    attempt: int
    lease: float  # seconds a claim (or a renewal) lasts
    until: datetime
    notification: Notification

    @property
    def key(self) -> int:
        return self.row_id
