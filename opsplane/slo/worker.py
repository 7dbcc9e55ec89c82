"""`serve`'s SLO worker: each minute, every SLO's events recorded, its burn rates and budget
worked out, and their series published for the burn-rate rules.

A minute is recorded SETTLE seconds after it ends, once the scrape that closes it is in: its
events are read from the sample store (or the Prometheus of `metrics.source: prometheus`) by
`record.py`, or counted from the health worker's tallies for a checks SLI, then added to each
SLO's ledger and written to the store (minute and hour rows) in one transaction. After a pause
(the store down, a slow machine) the missed minutes are caught up, CATCH_UP at most; minutes
before `serve` started are never made up: they are absent, and count as minutes without
events.

Each SLO's status follows (status.py): the series for the rules (series.py, added by the
alerts worker to its scrape of "opsplane"), and an event when a budget is spent
(`slo.budget_exhausted`) or has some left again (`slo.budget_restored`). One replica only:
two would count every minute twice.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsplane.workers import STUCK_AFTER, LoopWorker, WorkerContext

if TYPE_CHECKING:
    from opsplane.metrics.promql import SeriesSource
    from opsplane.slo.ledger import Ledger
    from opsplane.slo.status import SloStatus

log = logging.getLogger(__name__)

POLL = 10.0  # how often the checks' tallies are read (a result is put in the minute it was read in)
SETTLE = 20.0  # a minute is recorded this long after it ends: its closing scrape is in by then
CATCH_UP = 60  # minutes recorded at most after a pause: what the sample store's window still holds
PRUNE_EVERY = 3600.0


class SloWorker(LoopWorker):
    """Records every SLO's events each minute and keeps its status and series."""

    singleton = True

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("slo", ctx, stuck_after=max(STUCK_AFTER, 3 * 60.0))
        self.slos = dict(ctx.inventory.slos)
        self.ledgers: dict[str, Ledger] = {}
        self.statuses: dict[str, SloStatus] = {}
        self.samples: list[Any] = []
        self.problems: dict[str, str] = {}  # why an SLO's SLI cannot be read now
        self._exhausted: dict[str, bool] = {}  # as the last budget event says
        self._next = 0  # the next minute to record (Unix seconds // 60)
        self._tallies: dict[str, tuple[int, int]] = {}  # the checks' tallies at the last reading
        self._checks: dict[int, dict[str, tuple[float, float]]] = {}  # minute -> component -> counts
        self._pruned = -math.inf
        self._source: SeriesSource | None = None
        ctx.slos = self

    # --- the loop -----------------------------------------------------------------------

    async def opening(self) -> None:
        await self.ctx.in_store(self._load)

    async def closing(self) -> None:
        client = getattr(self._source, "client", None)
        if client is not None:
            client.close()

    async def run(self) -> None:
        await self.every(POLL, self._round, doing="recording SLOs")

    async def _round(self) -> datetime:
        now = self.ctx.clock.now().timestamp()
        self._read_checks(now)
        due = math.floor((now - SETTLE) / 60)  # minutes before this one are over and settled
        if due > self._next:
            first = max(self._next, due - CATCH_UP)
            await self.ctx.in_store(self._record, first, due)
            self._next = due
            await self.ctx.in_store(self._judge)
        return datetime.fromtimestamp((self._next + 1) * 60 + SETTLE, UTC)

    def _read_checks(self, now: float) -> None:
        """Put the checks' results since the last reading in the minute that is running."""
        checks = self.ctx.checks
        if checks is None:
            return
        from opsplane.slo.record import check_counts

        tallies = dict(checks.tallies)
        minute = math.floor(now / 60)
        counts = self._checks.setdefault(minute, {})
        for component in {slo.sli.checks.component or slo.service for slo in self.slos.values()
                          if slo.sli.checks is not None}:
            ok, total = check_counts(tallies, component, self._tallies)
            was_ok, was_total = counts.get(component, (0.0, 0.0))
            counts[component] = (was_ok + ok, was_total + total)
        self._tallies = tallies

    # --- on the store's threads ---------------------------------------------------------

    def _load(self) -> None:
        """The ledgers as the store kept them, and where each budget stood."""
        from opsplane.slo import service

        now = self.ctx.clock.now()
        with self.ctx.store.session() as session:
            for name, slo in self.slos.items():
                self.ledgers[name] = service.load(session, name=name, slo=slo, now=now)
                self._exhausted[name] = service.budget_was_exhausted(session, name=name)
        newest = max((ledger.newest for ledger in self.ledgers.values()), default=-1)
        # The minute running now is the first: it began before serve, so its start has no samples.
        self._next = max(newest + 1, math.floor(now.timestamp() / 60))
        self._judge_all(now)

    def _record(self, first: int, due: int) -> None:
        """Record minutes [first, due) of every SLO."""
        from opsplane.slo import service
        from opsplane.slo.record import minute_counts

        counted: dict[str, list[tuple[float, float]]] = {}
        for name, slo in self.slos.items():
            if slo.sli.checks is not None:
                component = slo.sli.checks.component or slo.service
                counted[name] = [self._checks.get(m, {}).get(component, (0.0, 0.0))
                                 for m in range(first, due)]
                continue
            source = self._series_source()
            if source is None:
                continue  # nothing scraped yet: no minutes to record
            try:
                got = minute_counts(slo, source, first, due - first)
            except Exception as exc:  # Prometheus away, or an answer the engine refuses
                self.problems[name] = f"its SLI could not be read: {exc}"
                log.warning("could not read the SLI of SLO %s: %s", name, exc)
                continue
            if got.problem is not None:
                self.problems[name] = got.problem
                continue
            self.problems.pop(name, None)
            counted[name] = list(got.minutes)
        for minute in [m for m in self._checks if m < due]:
            del self._checks[minute]
        now = self.ctx.clock.now()
        with self.ctx.store.session() as session:
            for name, minutes in counted.items():
                ledger = self.ledgers[name]
                for offset, (good, total) in enumerate(minutes):
                    ended = ledger.add(first + offset, good, total)
                    if ended is not None:
                        service.record(session, slo=name, minute=first + offset, good=min(good, total),
                                       total=total, slices=ended[0], bad_slices=ended[1])
            if now.timestamp() - self._pruned >= PRUNE_EVERY:
                self._pruned = now.timestamp()
                service.prune(session, now=now)

    def _judge(self) -> None:
        """Each SLO's status and series; an event for each budget spent or no longer spent."""
        from opsplane.slo import service

        now = self.ctx.clock.now()
        self._judge_all(now)
        changed = []
        for name, status in self.statuses.items():
            if status.state == "exhausted" and not self._exhausted.get(name):
                changed.append((status, True))
            elif self._exhausted.get(name) and status.remaining is not None and status.remaining > 0:
                changed.append((status, False))
        if changed:
            with self.ctx.store.session() as session:
                for status, exhausted in changed:
                    service.record_budget_change(session, status, exhausted=exhausted, now=now)
            for status, exhausted in changed:
                self._exhausted[status.name] = exhausted

    def _judge_all(self, now: datetime) -> None:
        from opsplane.slo.series import slo_samples
        from opsplane.slo.status import judge

        self.statuses = {name: judge(name, slo, self.ledgers[name].counts, now,
                                     problem=self.problems.get(name)) for name, slo in self.slos.items()}
        self.samples = slo_samples(self.statuses.values(), env=self.ctx.env)

    def _series_source(self) -> SeriesSource | None:
        if self._source is not None:
            return self._source
        if self.ctx.inventory.metrics.source == "prometheus":
            from opsplane.metrics.remote import PrometheusClient
            from opsplane.slo.record import PrometheusSource

            self._source = PrometheusSource(PrometheusClient.from_settings(self.ctx.inventory.metrics,
                                                                           self.ctx.environ))
            return self._source
        samples = self.ctx.samples
        self._source = samples.locked_source() if samples is not None else None
        return self._source


def build(ctx: WorkerContext) -> SloWorker | None:
    """Only when the inventory has SLOs."""
    return SloWorker(ctx) if ctx.inventory.slos else None
