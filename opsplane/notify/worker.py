"""The notify worker of `serve` (docs/notifications.md): the outbox's dispatcher.

Each pass sends what may be sent (each lane in order, every channel at its rate, claims held
while a send runs: `notify.dispatcher`), then sleeps until the next row can be sent (not one
waiting behind another row of its lane, on a throttled channel or over a channel's rate), until
woken (an alerting or paging cycle queued something), and at most POLL seconds, for the rows
other processes queue.
"""

from __future__ import annotations

import logging
from datetime import datetime

from opsplane.workers import LoopWorker, WorkerContext

log = logging.getLogger("opsplane.server")
# The longest the outbox goes unread while nothing is due: rows other processes queue.
POLL = 5.0
# A pass may last minutes (sends one after another, each within its channel's timeout).
STUCK_AFTER = 600.0


class DispatchWorker(LoopWorker):
    """Any number of replicas may run one: each row is claimed in its own transaction before
    it is sent, and a claim lapses only when its holder stopped renewing it."""

    singleton = False

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("notify", ctx, stuck_after=STUCK_AFTER)

    async def run(self) -> None:
        from opsplane.notify.dispatcher import Dispatcher

        ctx = self.ctx
        dispatcher = Dispatcher(ctx.store, ctx.inventory.channels, clock=ctx.clock)

        async def deliver() -> datetime | None:
            await ctx.in_store(dispatcher.run_once)
            return await ctx.in_store(dispatcher.next_wakeup)

        try:
            await self.every(POLL, deliver, doing="delivering notifications")
        finally:
            await ctx.in_store(dispatcher.close)


def build(ctx: WorkerContext) -> DispatchWorker | None:
    """Only with channels to deliver to."""
    if not ctx.inventory.channels.named:
        log.info("no channels under channels.named: alerts and incidents are recorded but page nobody")
        return None
    return DispatchWorker(ctx)
