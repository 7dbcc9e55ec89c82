"""The seam between `serve` and the domains it runs: workers.

A worker is one domain's loop (the probe scheduler, the scraper, the rule cycle, paging, the
outbox's dispatcher, the runtime follower, ...). `serve` builds the workers its inventory
calls for at one place (`opsplane.composition.WORKERS`), starts them in that order and stops
them in the reverse one. Each worker

- has a `name` and says whether it may run on one replica only (`singleton`: it decides
  something once for the whole platform, such as a rule cycle; decision 0023);
- is started and stopped (`start`, `stop`), and can be woken early (`wake`: alerting is, when
  a scrape's `up` changes);
- reports its health (`health`): its state, when it last ran, how far behind its schedule it
  is, how many errors it met and the last one. `/health` and `/metrics` show every worker's;
  one that crashed, ended or fell far behind makes `/health` degraded.

What a worker needs comes through its `WorkerContext`: the world `serve` was given (inventory,
store, clock, environment, metrics, the store's threads) and the read side of the other
domains (`opsplane.live`), published there by the workers that keep it. There are no globals:
two control planes in one process (the tests run many) share nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from opsplane.live import STUCK_AFTER, WorkerHealth, WorkerState

if TYPE_CHECKING:
    from opsplane.clock import Clock
    from opsplane.config.models import Inventory
    from opsplane.drivers.probes.resolve import Resolver
    from opsplane.drivers.runtime import RuntimeWatch
    from opsplane.live import (
        AlertReads,
        BackupReads,
        CheckReads,
        Looks,
        ReportReads,
        RuleCycles,
        RuntimeReads,
        Samples,
        SloReads,
    )
    from opsplane.store import Store
    from opsplane.telemetry import ControlPlaneMetrics

log = logging.getLogger("opsplane.workers")
_T = TypeVar("_T")
# Threads for the store's work: the writer, a rule cycle, paging, the dispatcher and scrape
# events can each have one at a time.
STORE_THREADS = 5


class Worker(Protocol):
    """One domain's loop behind the seam."""

    @property
    def name(self) -> str: ...
    @property
    def singleton(self) -> bool: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def wake(self) -> None:
        """Run now rather than at the next scheduled time (from the event loop's thread)."""
        ...

    def health(self) -> WorkerHealth: ...


class StoreThreads:
    """The store's work on threads of its own (STORE_THREADS), never behind the default
    executor's other users: a write never waits for a check's name lookup."""

    def __init__(self, threads: int = STORE_THREADS) -> None:
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="opsplane-store")
        call = functools.partial(work, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


@dataclass
class WorkerContext:
    """What workers are given: the world of `serve`, and the other domains' read side.

    The read-side slots are filled by the workers that keep what they read (the health worker
    publishes `checks`, the metrics worker `samples` and `lookers`, ...): a worker reads them
    when it runs, never while it is built, so the order of building does not matter."""

    inventory: Inventory
    store: Store
    clock: Clock
    env: str
    metrics: ControlPlaneMetrics
    environ: Mapping[str, str] | None = None
    store_threads: StoreThreads = field(default_factory=StoreThreads)
    # how `serve` was asked to run: state changes gathered this long before a write, the
    # checks' name lookups, the runtime to follow
    flush_interval: float = 0.5
    resolver: Resolver | None = None
    runtime: RuntimeWatch | None = None
    inventory_dir: Path = field(default_factory=Path.cwd)  # where the inventory's relative paths start
    started_at: datetime | None = None
    # the read side of the domains, and what the runtime follower may ask them
    checks: CheckReads | None = None
    samples: Samples | None = None
    liveness: RuntimeReads | None = None
    alerts: AlertReads | None = None
    rules: RuleCycles | None = None
    backups: BackupReads | None = None
    slos: SloReads | None = None
    reports: ReportReads | None = None
    lookers: list[Looks] = field(default_factory=list)
    workers: WorkerSet | None = None

    async def in_store(self, work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return await self.store_threads.run(work, *args, **kwargs)

    def wake(self, name: str) -> None:
        """Wake the worker `name`, when there is one."""
        if self.workers is not None:
            self.workers.wake(name)


class WorkerSet:
    """The workers of one control plane, in the order they start."""

    def __init__(self, workers: Sequence[Worker]) -> None:
        names = [w.name for w in workers]
        if len(set(names)) != len(names):
            raise ValueError(f"two workers share a name: {names}")
        self._workers = list(workers)
        self._started = False

    def __iter__(self) -> Iterator[Worker]:
        return iter(self._workers)

    def __len__(self) -> int:
        return len(self._workers)

    def get(self, name: str) -> Worker | None:
        return next((w for w in self._workers if w.name == name), None)

    def wake(self, name: str) -> bool:
        worker = self.get(name)
        if worker is not None:
            worker.wake()
        return worker is not None

    async def start(self) -> None:
        """Start each worker in order; if one cannot start, stop them all again."""
        self._started = True
        for worker in self._workers:
            try:
                await worker.start()
            except BaseException:
                await self.stop()
                raise

    async def stop(self) -> None:
        """Stop every worker in the reverse order (a worker never started still closes: the
        health worker writes what is pending); one that fails to stop is logged and the others
        are stopped all the same."""
        self._started = False
        for worker in reversed(self._workers):
            try:
                await worker.stop()
            except Exception:
                log.exception("worker %s did not stop cleanly", worker.name)

    @property
    def started(self) -> bool:
        """Between `start` and `stop`."""
        return self._started

    def health(self) -> list[WorkerHealth]:
        return [w.health() for w in self._workers]


class LoopWorker:
    """A worker whose work is one coroutine (`run`), with the bookkeeping of its health.

    The loop calls `ran()` after each round, `failed(exc)` for an error it survives, and
    `expect(seconds)` when its next round is due; `pause(seconds)` sleeps until then or until
    it is woken. A loop that raises is CRASHED, one that returns is ENDED: both degrade /health.
    """

    singleton = False

    def __init__(self, name: str, ctx: WorkerContext, *, stuck_after: float = STUCK_AFTER) -> None:
        self.name = name
        self.ctx = ctx
        self.stuck_after = stuck_after
        self._state = WorkerState.STARTING
        self._task: asyncio.Task[None] | None = None
        self._woken: asyncio.Event | None = None
        self._last_run: datetime | None = None
        self._due: float | None = None  # time.monotonic() by which the next round should have run
        self._errors = 0
        self._last_error: str | None = None

    # --- what a worker does -------------------------------------------------------------

    async def run(self) -> None:
        raise NotImplementedError

    async def opening(self) -> None:
        """Called by `start` before the loop begins (load state, record a start)."""

    async def closing(self) -> None:
        """Called by `stop` after the loop has ended (write what is pending, close clients)."""

    def failing(self) -> str | None:
        """Why the worker does not do its work now, while that lasts (degrades /health)."""
        return None

    # --- the seam -----------------------------------------------------------------------

    async def start(self) -> None:
        self._woken = asyncio.Event()
        await self.opening()
        self._task = asyncio.get_running_loop().create_task(self._guarded(), name=f"worker:{self.name}")
        self._state = WorkerState.RUNNING

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._state is WorkerState.RUNNING:
            self._state = WorkerState.STOPPED
        await self.closing()

    def wake(self) -> None:
        if self._woken is not None:
            self._woken.set()

    def health(self) -> WorkerHealth:
        lag = self.lag()  # first: a worker may learn its last run while it works out its lag
        return WorkerHealth(self.name, self._state, self.singleton, self._last_run, lag,
                            self._errors, self._last_error, self.failing(), self.stuck_after)

    def lag(self) -> float:
        """Seconds behind its schedule: past the time its next round was due (`expect`)."""
        return 0.0 if self._due is None else max(0.0, time.monotonic() - self._due)

    @property
    def running(self) -> bool:
        return self._state is WorkerState.RUNNING

    # --- for the loop -------------------------------------------------------------------

    def ran(self) -> None:
        self._last_run = self.ctx.clock.now()
        self._due = None

    def failed(self, exc: BaseException) -> None:
        self._errors += 1
        self._last_error = first_line(exc)

    def expect(self, seconds: float | None) -> None:
        """The next round is due in `seconds`, negative when it already was (None: only when
        woken)."""
        self._due = None if seconds is None else time.monotonic() + seconds

    async def pause(self, seconds: float) -> None:
        """Sleep `seconds`, or less when woken; the wake is used up."""
        assert self._woken is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), max(0.0, seconds))
        self._woken.clear()

    async def every(self, poll: float, round_: Callable[[], Awaitable[datetime | None]], *,
                    doing: str) -> None:
        """Run `round_` for ever: again after `poll` seconds, sooner when it returns the time
        its next round is due, or when woken. An error is counted and logged, and the round
        tried again after `poll`: the store may be down for a while (`doing` names the work
        in that log line)."""
        while True:
            delay = poll
            try:
                due = await round_()
                if due is not None:
                    delay = min(delay, max(0.0, (due - self.ctx.clock.now()).total_seconds()))
            except Exception as exc:
                self.failed(exc)
                log.exception("%s failed; trying again in %g s", doing, poll)
            self.ran()
            self.expect(delay)
            await self.pause(delay)

    async def _guarded(self) -> None:
        try:
            await self.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # a loop of tasks (asyncio.TaskGroup) says why its first task failed
            while isinstance(exc, ExceptionGroup) and exc.exceptions:
                exc = exc.exceptions[0]
            self.failed(exc)
            self._state = WorkerState.CRASHED
            log.exception("worker %s crashed", self.name)
        else:
            self._state = WorkerState.ENDED
            log.error("worker %s ended while serve runs", self.name)


def first_line(exc: BaseException) -> str:
    """An error in a line: a database's own message (without the statement and parameters
    SQLAlchemy adds), else the exception's."""
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {said[0][:300] if said else ''}".rstrip(": ")


class WorkerMetrics(Collector):
    """Every worker's health as series, built when scraped: `opsplane_worker_up`,
    `opsplane_worker_last_run_timestamp_seconds`, `opsplane_worker_lag_seconds` and
    `opsplane_worker_errors_total`, labelled by worker."""

    def __init__(self, health: Callable[[], list[WorkerHealth]]) -> None:
        self._health = health

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        reports = self._health()
        up = GaugeMetricFamily("opsplane_worker_up", "1 while the worker runs and is not failing "
                               "or stuck, else 0.", labels=["worker"])
        last = GaugeMetricFamily("opsplane_worker_last_run_timestamp_seconds",
                                 "When the worker last finished a round (Unix time; absent before "
                                 "the first).", labels=["worker"])
        lag = GaugeMetricFamily("opsplane_worker_lag_seconds",
                                "How far behind its schedule the worker is.", labels=["worker"])
        errors = CounterMetricFamily("opsplane_worker_errors", "Errors the worker met and went on "
                                     "after (or crashed on).", labels=["worker"])
        for report in reports:
            fine = report.state is WorkerState.RUNNING and report.problem is None
            up.add_metric([report.name], 1.0 if fine else 0.0)
            if report.last_run is not None:
                last.add_metric([report.name], report.last_run.timestamp())
            lag.add_metric([report.name], report.lag)
            errors.add_metric([report.name], report.errors)
        yield from (up, last, lag, errors)
