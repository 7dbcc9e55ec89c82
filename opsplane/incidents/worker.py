"""The paging worker of `serve` (docs/oncall.md, docs/incidents.md): what open incidents owe
people, queued in the outbox each cycle with idempotent keys (`incidents.paging`): escalation
steps, acknowledgements, resolutions, status updates and reminders.

A cycle runs at once when an alerting cycle changed an alert (it may have opened an
incident), else when the next step or reminder falls due, and at least every POLL seconds for
what other processes did (`opsplane incident ack`). What it queued wakes the notify worker.
"""

from __future__ import annotations

from datetime import datetime

from opsplane.workers import LoopWorker, WorkerContext

# The longest the incidents go unread while nothing is due: changes other processes make.
POLL = 5.0


class PagingWorker(LoopWorker):
    """One replica only: two would each page the same step (their keys are idempotent, but
    the `oncall.unreachable` events they record are not)."""

    singleton = True

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("incidents", ctx)

    async def run(self) -> None:
        from opsplane.incidents.paging import page_cycle

        ctx = self.ctx

        async def page() -> datetime | None:
            paged = await ctx.in_store(page_cycle, ctx.store, inventory=ctx.inventory, now=ctx.clock.now())
            if paged.queued:
                ctx.wake("notify")
            return paged.next_due

        await self.every(POLL, page, doing="paging")


def build(ctx: WorkerContext) -> PagingWorker | None:
    """Only with channels to page through."""
    return PagingWorker(ctx) if ctx.inventory.channels.named else None
