"""The metrics worker of `serve`: every scrape target on its interval into the sample store.

The store is made only when something is scraped (the engine and the store are not even
imported otherwise), or when the rules need it for opsplane's own series. A target whose
scrape state changes (read, unreadable, over its series limit) is an event, and wakes the
alerts worker, since `up` just changed with it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsplane.events import service as events
from opsplane.metrics.scrape import LockedSource, MetricsScraper, ScrapeStatus, ScrapeTarget, scrape_targets
from opsplane.workers import LoopWorker, WorkerContext

if TYPE_CHECKING:
    from opsplane.metrics.promql import Labels
    from opsplane.metrics.store import SampleStore

log = logging.getLogger("opsplane.server")
ACTOR = "system:control-plane"


class MetricsWorker(LoopWorker):
    """The scraper and the sample store. One replica only: two would record each change of a
    scrape's state twice, and the rules read this replica's samples."""

    singleton = True

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("metrics", ctx)
        scraped = scrape_targets(ctx.inventory, ctx.env)
        self.store: SampleStore | None = None
        if scraped:
            self._make_store(ctx.inventory.metrics.series_limit)
        self.scraper = MetricsScraper(scraped, clock=ctx.clock, store=self.store, env=ctx.env,
                                      on_change=self._changed)
        self._scraping_now: dict[str, asyncio.Task[ScrapeStatus]] = {}
        self._side_tasks: set[asyncio.Future[None]] = set()
        ctx.samples = self
        ctx.lookers.append(self)

    def _make_store(self, series_limit: int) -> SampleStore:
        from opsplane.metrics.store import SampleStore

        self.store = SampleStore(window=self.ctx.inventory.metrics.window, series_limit=series_limit,
                                 clock=self.ctx.clock)
        return self.store

    # --- what the rules read (live.Samples) -------------------------------------------------

    def sample_store(self, *, series_limit: int) -> SampleStore:
        if self.store is not None:
            return self.store
        self.scraper.store = self._make_store(max(self.ctx.inventory.metrics.series_limit, series_limit))
        return self.scraper.store

    def locked_source(self) -> LockedSource | None:
        return self.scraper.locked_source()

    def append_scrape(self, target: str, at: float, samples: Sequence[tuple[Labels, float]]) -> None:
        assert self.store is not None
        with self.scraper.lock:
            self.store.append_scrape(target, at, samples)

    # --- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        if not self.scraper.targets:  # nothing to scrape: idle until stopped
            await asyncio.get_running_loop().create_future()
        await self.scraper.run_forever()

    async def closing(self) -> None:
        await self.scraper.close()

    def lag(self) -> float:
        """How far the most overdue target's last scrape is past its next slot and timeout."""
        if not self.running:
            return 0.0
        now = self.ctx.clock.now()
        behind = timedelta(0)
        for target in self.scraper.targets:
            status = self.scraper.status(target.component)
            if status is not None:
                behind = max(behind, now - status.at - timedelta(seconds=target.interval + target.timeout))
                self._last_run = max(self._last_run or status.at, status.at)
        return behind.total_seconds()

    def look_now(self, services: set[str]) -> list[asyncio.Future[Any]]:
        """Scrape the targets of `services` now, outside their slots (one scrape at a time)."""
        runs: list[asyncio.Future[Any]] = []
        for target in self.scraper.targets:
            if target.component in services:
                scrape = self._scraping_now.get(target.component)
                if scrape is None:
                    scrape = asyncio.get_running_loop().create_task(self.scraper.scrape(target))
                    self._scraping_now[target.component] = scrape
                    scrape.add_done_callback(functools.partial(self._scraped_now, target.component))
                runs.append(scrape)
        return runs

    def _scraped_now(self, component: str, _: object) -> None:
        self._scraping_now.pop(component, None)

    def _changed(self, target: ScrapeTarget, status: ScrapeStatus) -> None:
        """A target's scrape state changed: an event, and the rules run now."""
        self.ctx.wake("alerts")
        task = asyncio.get_running_loop().create_task(self.ctx.in_store(
            self._record, target.component, status.state.value, status.reason))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _record(self, component: str, state: str, reason: str) -> None:
        try:
            with self.ctx.store.session() as session:
                events.record(session, kind="metrics.scrape", actor=ACTOR, target=component,
                              service=component, outcome=state.lower(), clock=self.ctx.clock,
                              details={"state": state, "reason": reason})
        except Exception as exc:  # the store may be down; the next change is recorded again
            self.failed(exc)
            log.warning("could not record the scrape state of %s: %s", component, exc)


def build(ctx: WorkerContext) -> MetricsWorker:
    return MetricsWorker(ctx)
