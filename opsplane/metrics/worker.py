"""The metrics worker of `serve`: every scrape target on its interval into the sample store.

The store is made only when something is scraped (the engine and the store are not even
imported otherwise), or when the rules need it for opsplane's own series. A target whose
scrape state changes (read, unreadable, over its series limit) is an event, and wakes the
alerts worker, since `up` just changed with it.

A component opsplane runs behind a proxy is scraped at each of its running instances: the
worker follows the runtime's notices itself (`RuntimeWatch.watch`) and gives each "state"
notice's instances to the scraper, which starts scraping the new ones and marks the series of
those that stopped stale; the alerts worker is woken then too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsplane.events import service as events
from opsplane.metrics.scrape import (
    TRACK_SEPARATOR,
    LockedSource,
    MetricsScraper,
    ScrapeStatus,
    ScrapeTarget,
    instance_targets,
    scrape_targets,
)
from opsplane.workers import LoopWorker, WorkerContext

if TYPE_CHECKING:
    from opsplane.drivers.runtime.base import RuntimeWatch
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
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.scraper.run_forever())  # with nothing to scrape: idle until stopped
            if self.scraper.per_instance and self.ctx.runtime is not None:
                tasks.create_task(self._follow_instances(self.ctx.runtime))

    async def _follow_instances(self, runtime: RuntimeWatch) -> None:
        """Scrape the running instances of the components scraped per instance, as each of the
        runtime's "state" notices lists them (a "lost" runtime leaves them as they were: its
        instances run on without it)."""
        async for notice in runtime.watch():
            if notice.kind != "state":
                continue
            try:
                found = instance_targets(self.ctx.inventory, notice.instances)
                gone = await self.scraper.replace_instances(found)
            except Exception as exc:  # one odd notice must not end following the runtime
                self.failed(exc)
                log.exception("could not take the instances to scrape from the runtime's state")
                continue
            if gone:
                log.info("metrics: no longer scraping %s", ", ".join(t.key for t in gone))
                self.ctx.wake("alerts")  # their `up` just went stale

    async def closing(self) -> None:
        await self.scraper.close()

    def lag(self) -> float:
        """How far the most overdue target's last scrape is past its next slot and timeout."""
        if not self.running:
            return 0.0
        now = self.ctx.clock.now()
        behind = timedelta(0)
        for target in self.scraper.targets:
            status = self.scraper.status(target.key)
            if status is not None:
                behind = max(behind, now - status.at - timedelta(seconds=target.interval + target.timeout))
                self._last_run = max(self._last_run or status.at, status.at)
        return behind.total_seconds()

    def look_now(self, services: set[str]) -> list[asyncio.Future[Any]]:
        """Scrape the targets of `services` now, outside their slots (one scrape at a time per
        target): every instance of a component scraped per instance, whichever release the
        runtime named ("catalog@v2" is catalog)."""
        components = {service.partition(TRACK_SEPARATOR)[0] for service in services}
        runs: list[asyncio.Future[Any]] = []
        for target in self.scraper.targets:
            if target.component in components:
                scrape = self._scraping_now.get(target.key)
                if scrape is None:
                    scrape = asyncio.get_running_loop().create_task(self.scraper.scrape(target))
                    self._scraping_now[target.key] = scrape
                    scrape.add_done_callback(functools.partial(self._scraped_now, target.key))
                runs.append(scrape)
        return runs

    def _scraped_now(self, key: str, _: object) -> None:
        self._scraping_now.pop(key, None)

    def _changed(self, target: ScrapeTarget, status: ScrapeStatus) -> None:
        """A target's scrape state changed: an event, and the rules run now."""
        self.ctx.wake("alerts")
        task = asyncio.get_running_loop().create_task(self.ctx.in_store(
            self._record, target.key, target.component, status.state.value, status.reason))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _record(self, key: str, component: str, state: str, reason: str) -> None:
        try:
            with self.ctx.store.session() as session:
                events.record(session, kind="metrics.scrape", actor=ACTOR, target=key,
                              service=component, outcome=state.lower(), clock=self.ctx.clock,
                              details={"state": state, "reason": reason})
        except Exception as exc:  # the store may be down; the next change is recorded again
            self.failed(exc)
            log.warning("could not record the scrape state of %s: %s", key, exc)


def build(ctx: WorkerContext) -> MetricsWorker:
    return MetricsWorker(ctx)
