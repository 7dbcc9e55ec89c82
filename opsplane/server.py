"""The control plane: the probe scheduler and the API in one asyncio process.

Data flow: the scheduler runs checks; each result updates the in-memory latest results and
opsplane's own metrics; a result that changes a check's state becomes a Transition, queued
and written (event + check_states row) by one writer task in a worker thread, so the event
loop never waits on the database. When opsplane's runtime runs the services, its notices
are followed too: a service whose process exited is checked (and scraped) at once, and the
rules run right after (docs/decisions/0016-runtime-exits-start-checks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import resource
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import select, text

from opsplane.clock import Clock, SystemClock
from opsplane.config.models import Inventory
from opsplane.drivers.probes import Probe, run_probe
from opsplane.events import service as events
from opsplane.health.flows import prepare
from opsplane.health.history import ProbeHistory
from opsplane.health.models import ProbeResult, State
from opsplane.health.scheduler import ProbeScheduler
from opsplane.health.tables import CheckState
from opsplane.health.targets import CheckTarget, check_targets, environment_name
from opsplane.health.transitions import KnownState, StateTracker, Transition
from opsplane.metrics.scrape import MetricsScraper, ScrapeStatus, ScrapeTarget, scrape_targets
from opsplane.store import Store
from opsplane.telemetry import ControlPlaneMetrics

if TYPE_CHECKING:
    from opsplane.alerts.evaluations import Evaluation
    from opsplane.alerts.flows import Alerting
    from opsplane.alerts.intake import ReceivedAlert
    from opsplane.drivers.probes.resolve import Resolver
    from opsplane.drivers.runtime import RuntimeWatch
    from opsplane.metrics.remote import PrometheusClient
    from opsplane.metrics.store import SampleStore
    from opsplane.runtime.liveness import ServiceLiveness

log = logging.getLogger("opsplane.server")
ACTOR = "system:control-plane"
WRITE_CHUNK = 500
RETRY_DELAY = 5.0
# The shortest time between two alerting cycles started by changed inputs: a burst of
# changes (many checks failing at once) is one cycle, not one each.
CHANGE_GAP = 1.0
# The longest the outbox goes unread while nothing is due: rows other processes queue.
DISPATCH_POLL = 5.0
# After the runtime said a service's process exited, the rules wait this long at most for
# the service's checks and scrapes started then (a refused connection takes a millisecond; a
# check that hangs until its timeout must not hold back what is already known).
LOOK_WAIT = 0.5
# Threads for the store's work: the writer, a rule cycle, a paging cycle and scrape events can
# each have one at a time.
STORE_THREADS = 4
_T = TypeVar("_T")


class ControlPlane:
    """Everything `opsplane serve` runs, with its world (store, clock, environment) injected."""

    def __init__(
        self,
        inventory: Inventory,
        store: Store,
        *,
        env: str | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        metrics: ControlPlaneMetrics | None = None,
        flush_interval: float = 0.5,
        runtime: RuntimeWatch | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        """`runtime`, when given, is followed for its notices (`drivers.runtime.watched_runtime`
        gives the inventory's); `resolver` looks up the checks' host names (default: the
        process's, on threads of its own)."""
        self.inventory = inventory
        self.store = store
        self.env = environment_name(inventory, env)
        self.targets: list[CheckTarget] = check_targets(inventory, self.env)
        self.clock = clock or SystemClock()
        self.environ = environ
        self.metrics = metrics or ControlPlaneMetrics()
        self.flush_interval = flush_interval
        self.resolver = resolver
        # The store's work (state changes, events, rule cycles, paging) on threads of its own,
        # never behind the default executor's other users.
        self._store_threads: ThreadPoolExecutor | None = None
        self.latest: dict[str, ProbeResult] = {}
        self.checked_at: dict[str, datetime] = {}
        self.started_at: datetime | None = None
        self._tracker = StateTracker()
        self._pending: list[Transition] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._scheduler: ProbeScheduler | None = None
        self._probes: dict[str, Probe] = {}
        self._side_tasks: set[asyncio.Future[None]] = set()
        # What the dashboard charts of the checks: every check's last day of results at four
        # resolutions, 15 s to 24 min (512 bytes a check, 5 MB at 10,000). Request rates,
        # error ratios and latency come from the scraped samples below.
        self.history = ProbeHistory((t.id for t in self.targets), clock=self.clock)
        scraped = scrape_targets(inventory, self.env)
        # Every scraped sample, for PromQL; only when something is scraped (the engine and
        # the store are not even imported otherwise).
        self.samples: SampleStore | None = None
        if scraped:
            from opsplane.metrics.store import SampleStore

            self.samples = SampleStore(window=inventory.metrics.window,
                                       series_limit=inventory.metrics.series_limit, clock=self.clock)
        self.scraper = MetricsScraper(scraped, clock=self.clock, store=self.samples, env=self.env,
                                      on_change=self._scrape_changed)
        # Alert rules read the scraped samples and the checks that keep failing. Without
        # either there is nothing to evaluate, and neither the engine nor the rules are
        # loaded: they come in with the first scrape target, or the first CRITICAL result.
        self.alerting: Alerting | None = None
        self.prometheus: PrometheusClient | None = None
        self._failures: dict[str, int] = {}  # check id -> CRITICAL results in a row
        # Set when what the rules read changed in a way that can start or end an alert (a
        # scrape target went up or down, a check started, reached or stopped failing): the
        # next cycle runs at once instead of at the next evaluation interval.
        self._evaluate_soon = asyncio.Event()
        self._dispatch_soon = asyncio.Event()  # the outbox got something to deliver
        self._by_id: dict[str, CheckTarget] = {}
        # What the runtime says of the services it runs. A process that exits is known the
        # moment the supervisor sees it: its service's checks and scrapes run at once
        # (`_looking`), and the next cycle skips the pause between change-started cycles
        # (`_urgent`) and waits for them, so it sees what they found.
        self.runtime = runtime
        self.liveness: ServiceLiveness | None = None  # made when the runtime is first followed
        self._looking: set[asyncio.Future[Any]] = set()
        self._scraping_now: dict[str, asyncio.Task[ScrapeStatus]] = {}
        self._urgent = asyncio.Event()
        self._criticality = {name: c.criticality.value for _, name, c in inventory.components()}
        # Why the alerting cycles fail, since when and how many in a row; None while the last
        # one succeeded. /health says it.
        self.alerting_failure: CycleFailure | None = None
        if scraped or inventory.metrics.source == "prometheus":
            self._build_alerting()

    def _build_alerting(self) -> None:
        """The alerting machinery over the sample store (created if nothing is scraped, for the
        checks' own series) or over the configured Prometheus."""
        from opsplane.alerts.flows import Alerting, dependencies
        from opsplane.alerts.intake import AlertInbox

        intake = self.inventory.alerting.intake

        if self.inventory.metrics.source == "prometheus":
            from opsplane.metrics.remote import PrometheusClient, evaluate_prometheus

            self.prometheus = PrometheusClient.from_settings(self.inventory.metrics, self.environ)
            evaluate = evaluate_prometheus(self.prometheus)
        else:
            from opsplane.alerts.engine import evaluate_with
            from opsplane.metrics.store import SampleStore

            if self.samples is None:
                self.samples = SampleStore(window=self.inventory.metrics.window,
                                           series_limit=max(self.inventory.metrics.series_limit,
                                                            len(self.targets)), clock=self.clock)
                self.scraper.store = self.samples
            self._by_id = {t.id: t for t in self.targets}
            source = self.scraper.locked_source()
            assert source is not None
            evaluate = evaluate_with(source)
        self.alerting = Alerting(self.inventory.alerting, store=self.store, evaluate=evaluate,
                                 clock=self.clock, depends_on=dependencies(self.inventory),
                                 environ=self.environ,
                                 inbox=AlertInbox(self.clock, max_per_sender=intake.max_alerts_per_sender),
                                 incidents=self.inventory.incidents, channels=self.inventory.channels)

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        _raise_open_files_limit()
        self.started_at = self.clock.now()
        self._tracker = StateTracker(await self._in_store(self._load_known))
        self.metrics.watch(self.targets)
        await self._in_store(self._record_lifecycle, "control_plane.started")
        self._scheduler = ProbeScheduler(
            self.targets, run=self._run, on_result=self._on_result, on_skip=self.metrics.skip
        )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._scheduler.run_forever()),
                       loop.create_task(self._writer())]
        if self.scraper.targets:
            self._tasks.append(loop.create_task(self.scraper.run_forever()))
        if self.alerting is None and await self._in_store(self._alerts_were_stored):
            self._build_alerting()  # alerts of an earlier run go on (and resolve) from here
        if self.alerting is not None:
            self._tasks.append(loop.create_task(self._evaluate_rules(self.alerting)))
        else:
            self._tasks.append(loop.create_task(self._watch_without_rules()))
        if self.runtime is not None:
            self._tasks.append(loop.create_task(self._follow_runtime(self.runtime)))
        if self.inventory.channels.named:
            self._tasks.append(loop.create_task(self._deliver()))
        else:
            log.info("no channels under channels.named: alerts and incidents are recorded but page nobody")
        log.info("watching %d checks of %d components in %s", len(self.targets),
                 len(list(self.inventory.components())), self.env)

    async def stop(self) -> None:
        """Cancel the scheduler, write what is pending, record the stop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.scraper.close()
        if self.prometheus is not None:
            self.prometheus.close()
        while batch := self._take_pending():
            await self._in_store(self._write, batch)
        await self._in_store(self._record_lifecycle, "control_plane.stopped")
        if self._store_threads is not None:
            self._store_threads.shutdown(wait=False)
            self._store_threads = None

    # --- the hot path -------------------------------------------------------------------

    async def _run(self, target: CheckTarget) -> ProbeResult:
        # Probes are built once (request bytes, TLS context, resolved secrets) and reused; a
        # check whose secret is missing is retried on its next slot.
        probe = self._probes.get(target.id)
        if probe is None:
            prepared = prepare(target, environ=self.environ, resolver=self.resolver)
            if isinstance(prepared, ProbeResult):
                return prepared
            probe = self._probes[target.id] = prepared
        return await run_probe(probe, target.timeout)

    def _on_result(self, target: CheckTarget, result: ProbeResult, lateness: float) -> None:
        now = self.clock.now()
        self.latest[target.id] = result
        self.checked_at[target.id] = now
        self.history.record(target.id, result)
        self.metrics.observe(target, result, lateness)
        transition = self._tracker.observe(target.id, target.component, result, now)
        if transition is not None:
            self._pending.append(transition)
            self._wake.set()
        if result.state is State.CRITICAL:
            failures = self._failures[target.id] = self._failures.get(target.id, 0) + 1
            if self.alerting is None and self._tasks:
                self._start_alerting()
            if failures in (1, self.inventory.alerting.builtin_rules.thresholds.check_failures):
                self._evaluate_soon.set()
        elif self._failures.pop(target.id, None) is not None:
            self._evaluate_soon.set()

    async def _follow_runtime(self, runtime: RuntimeWatch) -> None:
        """The runtime's notices, for as long as serve runs: a service whose process exited,
        or that stopped or started answering, is looked at now."""
        from opsplane.runtime.liveness import ServiceLiveness

        liveness = self.liveness = ServiceLiveness()
        async for notice in runtime.watch():
            try:
                services = liveness.apply(notice)
                if services:
                    self._look_now(services)
            except Exception:  # one odd notice must not end following the runtime
                log.exception("could not act on the runtime's %s notice", notice.kind)

    def _down_for_good(self) -> dict[str, int]:
        """The services the runtime will not start again (none when it is not followed)."""
        return self.liveness.down_for_good() if self.liveness is not None else {}

    def _look_now(self, services: set[str]) -> None:
        """Run the checks and scrapes of `services` now, outside their slots, and a rule cycle
        as soon as they are done (at most LOOK_WAIT later)."""
        if self.alerting is None and self._tasks and self._down_for_good():
            self._start_alerting()
        runs: list[asyncio.Future[Any]] = []
        if self._scheduler is not None:
            runs += self._scheduler.run_now([t.id for t in self.targets if t.component in services])
        for target in self.scraper.targets:
            if target.component in services:
                scrape = self._scraping_now.get(target.component)
                if scrape is None:
                    scrape = asyncio.get_running_loop().create_task(self.scraper.scrape(target))
                    self._scraping_now[target.component] = scrape
                    scrape.add_done_callback(functools.partial(self._scraped_now, target.component))
                runs.append(scrape)
        for run in runs:
            self._looking.add(run)
            run.add_done_callback(self._looking.discard)
        log.info("runtime: %s changed; checking now", ", ".join(sorted(services)))
        self._urgent.set()
        self._evaluate_soon.set()

    def _scraped_now(self, component: str, _: object) -> None:
        self._scraping_now.pop(component, None)

    def _start_alerting(self) -> None:
        """Build alerting and start its loop; a failure (the store unreachable) is logged and
        tried again at the next CRITICAL result, never raised into the scheduler."""
        try:
            self._build_alerting()
        except Exception:
            log.exception("could not start alerting; trying again at the next failing check")
            self.alerting = None
            return
        assert self.alerting is not None
        self._tasks.append(asyncio.get_running_loop().create_task(self._evaluate_rules(self.alerting)))
        self._evaluate_soon.set()

    def receive_alerts(self, alerts: Sequence[ReceivedAlert]) -> list[ReceivedAlert] | None:
        """Hand alerts received through the API (a Prometheus's) to alerting, started for them
        if it was not running, and run a cycle now. Returns the alerts refused because their
        sender holds as many as it may (`alerting.intake.max_alerts_per_sender`); None when
        alerting could not start."""
        if self.alerting is None and self._tasks:
            self._start_alerting()
        if self.alerting is None or self.alerting.inbox is None:
            return None
        refused = self.alerting.inbox.put(alerts)
        self.metrics.alerts_received.inc(len(alerts) - len(refused))
        if refused:
            self.metrics.alerts_refused.labels("sender_limit").inc(len(refused))
        if len(refused) < len(alerts):
            self._evaluate_soon.set()
        return refused

    # --- persistence --------------------------------------------------------------------

    async def _in_store(self, work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """`work(*args, **kwargs)` on the store's threads (STORE_THREADS): a write never waits
        for a thread behind a check's name lookup or any other `asyncio.to_thread`."""
        if self._store_threads is None:
            self._store_threads = ThreadPoolExecutor(max_workers=STORE_THREADS,
                                                     thread_name_prefix="opsplane-store")
        call = functools.partial(work, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._store_threads, call)

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch = self._take_pending()
            if batch:
                try:
                    await self._in_store(self._write, batch)
                except Exception:  # noqa: BLE001 - keep watching; retry the batch later
                    log.exception("could not write %d state changes; retrying in %g s",
                                  len(batch), RETRY_DELAY)
                    self._pending[:0] = batch
                    self._wake.set()
                    await asyncio.sleep(RETRY_DELAY)
                    continue
            if not self._pending:
                await asyncio.sleep(self.flush_interval)  # let the next changes gather

    def _take_pending(self) -> list[Transition]:
        # At most WRITE_CHUNK per transaction: the first round of a large inventory is
        # thousands of state changes, and one transaction of them all would hold every ORM
        # object in memory at once.
        batch, self._pending = self._pending[:WRITE_CHUNK], self._pending[WRITE_CHUNK:]
        if self._pending:
            self._wake.set()
        return batch

    def _write(self, batch: list[Transition]) -> None:
        if not batch:
            return
        by_id = {t.id: t for t in self.targets}
        with self.store.session() as session:
            rows = {r.check_id: r for r in session.scalars(
                select(CheckState).where(CheckState.check_id.in_({t.check_id for t in batch})))}
            for change in batch:
                target = by_id.get(change.check_id)
                events.record(
                    session,
                    kind="check.state_changed",
                    actor=ACTOR,
                    target=change.check_id,
                    service=change.component,
                    outcome=change.current.value,
                    details={
                        "check": target.name if target else change.check_id,
                        "type": target.type if target else None,
                        "address": target.address if target else None,
                        "from": change.previous.value if change.previous else None,
                        "to": change.current.value,
                        "reason": change.reason,
                        "environment": self.env,
                    },
                    ts=change.at,
                )
                row = rows.get(change.check_id)
                if row is None:
                    row = CheckState(check_id=change.check_id, component=change.component)
                    session.add(row)
                    rows[change.check_id] = row
                row.state = change.current.value
                row.reason = change.reason
                row.since = change.at
        self.metrics.state_changes.inc(len(batch))

    def _load_known(self) -> dict[str, KnownState]:
        with self.store.session() as session:
            return {
                row.check_id: KnownState(State(row.state), row.since)
                for row in session.scalars(select(CheckState))
            }

    async def _evaluate_rules(self, alerting: Alerting) -> None:
        """One alerting cycle (evaluate, store, mute, notify) every evaluation interval, and
        one as soon as the inputs change (`_evaluate_soon`), at most one such cycle every
        CHANGE_GAP seconds. Cycles run in a worker thread: they read the samples under their
        lock and write to the store."""
        interval = alerting.settings.evaluation_interval
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        quiet_until = 0.0
        while True:
            await self._next_cycle(due, quiet_until)
            try:
                if self.samples is not None:
                    await self._in_store(self._ingest_own_series)
                report = await self._in_store(alerting.run_once)
                # pages to send, or an alert that changed state and may have opened an incident
                if report.queued or report.sent or report.evaluation.transitions:
                    self._dispatch_soon.set()
            except Exception as exc:  # a cycle that fails must not end alerting; the next one retries
                self._cycle_failed(exc)
            else:
                self._cycle_succeeded(len(report.refused))
            quiet_until = loop.time() + CHANGE_GAP
            if loop.time() >= due:
                due += interval
                if due < loop.time():  # a slow cycle: skip the slots it overran
                    due += math.ceil((loop.time() - due) / interval) * interval

    def _cycle_failed(self, exc: Exception) -> None:
        """Count it, say it on /health, and log it: with its traceback when the reason is new,
        in a line while the same reason goes on."""
        reason = _first_line(exc)
        self.metrics.alert_cycle_failures.inc()
        failure = self.alerting_failure
        if failure is None or failure.reason != reason:
            log.exception("an alerting cycle failed; the next one tries again: %s", reason)
            failure = CycleFailure(reason=reason, since=self.clock.now())
        else:
            log.warning("an alerting cycle failed again (%d in a row): %s", failure.count + 1, reason)
        self.alerting_failure = replace(failure, count=failure.count + 1)

    def _cycle_succeeded(self, dropped: int) -> None:
        if self.alerting_failure is not None:
            log.info("alerting cycles succeed again after %d failures", self.alerting_failure.count)
        self.alerting_failure = None
        self.metrics.alert_cycle_last_success.set(self.clock.now().timestamp())
        if dropped:
            self.metrics.alerts_dropped.inc(dropped)

    async def _watch_without_rules(self) -> None:
        """Until alerting starts, record every evaluation interval that the rules had nothing
        to read (nothing scraped, no check failing), so that `opsplane alerts` can tell a
        quiet platform from one that nothing watches."""
        from opsplane.alerts import evaluations

        interval = self.inventory.alerting.evaluation_interval
        while self.alerting is None:
            evaluation = evaluations.by_this_process(now=self.clock.now(), interval=interval,
                                                started_at=self.started_at or self.clock.now(), rules=0)
            try:
                await self._in_store(self._record_evaluation, evaluation)
            except Exception as exc:  # the store may be down; the next interval tries again
                log.warning("could not record that the rules have nothing to read: %s", exc)
            await asyncio.sleep(interval)
        # Alerting's own loop runs from here on: this one has done its part and is no longer
        # among the loops whose end means the control plane stopped (/health).
        current = asyncio.current_task()
        if current in self._tasks:
            self._tasks.remove(current)

    def _record_evaluation(self, evaluation: Evaluation) -> None:
        from opsplane.alerts import evaluations

        with self.store.session() as session:
            evaluations.record(session, evaluation)

    async def _next_cycle(self, due: float, quiet_until: float) -> None:
        """Wait until `due`, or until the inputs change but not before `quiet_until`; a process
        that exited (`_urgent`) does not wait for `quiet_until`, only for its service's checks
        and scrapes (at most LOOK_WAIT)."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._evaluate_soon.wait(), max(0.0, due - loop.time()))
        if loop.time() < quiet_until and not self._urgent.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._urgent.wait(), max(0.0, min(due, quiet_until) - loop.time()))
        self._urgent.clear()
        if self._looking:
            await asyncio.wait(set(self._looking), timeout=LOOK_WAIT)
        self._evaluate_soon.clear()

    async def _deliver(self) -> None:
        """Page and deliver (docs/notifications.md, docs/oncall.md): queue what open incidents
        owe people (escalation steps, acknowledgements, resolutions, reminders:
        `incidents.paging`), then send what the outbox holds. At once when an alerting cycle
        queued something or opened an incident, else when the next step, retry or digest
        falls due, and at least every DISPATCH_POLL seconds for what other processes did
        (`opsplane incident ack`)."""
        from opsplane.incidents.paging import page_cycle
        from opsplane.notify.dispatcher import Dispatcher

        dispatcher = Dispatcher(self.store, self.inventory.channels, clock=self.clock)
        try:
            while True:
                delay = DISPATCH_POLL
                try:
                    paged = await self._in_store(page_cycle, self.store, inventory=self.inventory,
                                                    now=self.clock.now())
                    await self._in_store(dispatcher.run_once)
                    # the next row that can be sent: not one waiting behind another row of its
                    # lane, on a throttled channel or over a channel's rate
                    wake = await self._in_store(dispatcher.next_wakeup)
                    for due in (wake, paged.next_due):
                        if due is not None:
                            delay = min(delay, max(0.0, (due - self.clock.now()).total_seconds()))
                except Exception:  # the store may be down: keep trying, never end delivery
                    log.exception("delivering notifications failed; trying again in %g s", DISPATCH_POLL)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dispatch_soon.wait(), delay)
                self._dispatch_soon.clear()
        finally:
            await self._in_store(dispatcher.close)

    def _ingest_own_series(self) -> None:
        """opsplane's own series for the rules (`alerts.own_series`: failing checks, services
        the runtime gave up on), as one scrape of "opsplane"."""
        from opsplane.alerts.own_series import own_samples

        at = self.clock.now().timestamp()
        samples = own_samples(failures=dict(self._failures), checks=self._by_id,
                              not_running=self._down_for_good(),
                              criticality=self._criticality, env=self.env)
        assert self.samples is not None
        with self.scraper.lock:
            self.samples.append_scrape("opsplane", at, samples)

    def _alerts_were_stored(self) -> bool:
        try:
            with self.store.engine.connect() as connection:
                return connection.execute(text("SELECT 1 FROM alert_states LIMIT 1")).first() is not None
        except Exception:  # no such table in an older store: no alerts to carry on
            return False

    def _scrape_changed(self, target: ScrapeTarget, status: ScrapeStatus) -> None:
        """A target's scrape state changed (read, unreadable, over its series limit): an event,
        and the rules run now, since `up` just changed with it."""
        self._evaluate_soon.set()
        task = asyncio.get_running_loop().create_task(self._in_store(
            self._record_scrape, target.component, status.state.value, status.reason))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _record_scrape(self, component: str, state: str, reason: str) -> None:
        try:
            with self.store.session() as session:
                events.record(session, kind="metrics.scrape", actor=ACTOR, target=component,
                              service=component, outcome=state.lower(), clock=self.clock,
                              details={"state": state, "reason": reason})
        except Exception as exc:  # the store may be down; the next change is recorded again
            log.warning("could not record the scrape state of %s: %s", component, exc)

    def _record_lifecycle(self, kind: str) -> None:
        with self.store.session() as session:
            events.record(session, kind=kind, actor=ACTOR, target="control-plane",
                          outcome="success", clock=self.clock,
                          details={"environment": self.env, "checks": len(self.targets)})

    # --- views --------------------------------------------------------------------------

    def since(self, check_id: str) -> datetime | None:
        known = self._tracker.known.get(check_id)
        return known.since if known else None


@dataclass(frozen=True)
class CycleFailure:
    """Alerting cycles failing for the same reason since `since`, `count` of them in a row."""

    reason: str
    since: datetime
    count: int = 0

    def sentence(self) -> str:
        return (f"alerting cycles fail since {self.since.isoformat(timespec='seconds')} "
                f"({self.count} in a row): {self.reason}")


def _first_line(exc: BaseException) -> str:
    """An error in a line: a database's own message (without the statement and parameters
    SQLAlchemy adds), else the exception's."""
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {said[0][:300] if said else ''}".rstrip(": ")


def _raise_open_files_limit() -> None:
    # Thousands of probes in flight need thousands of sockets; the soft limit is often 1024.
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def create_app(plane: ControlPlane, *, inventory_dir: Path | None = None) -> FastAPI:
    """The FastAPI app serving `plane`: /health, /metrics, the authenticated /api/v1 and the
    dashboard under /ui. `inventory_dir` (default: the current directory) is where the
    inventory's relative paths start, such as the runtime's state for the instance list.

    Every route is registered here, but the domains behind them (incidents, on-call, the
    dashboard's pages and templates, ...) are imported by the first request that needs them:
    the views modules import only what their signatures name (docs/api.md)."""
    from opsplane.alerts.intake_views import router as intake_router
    from opsplane.api import errors
    from opsplane.auth.views import router as auth_router
    from opsplane.events.views import router as events_router
    from opsplane.health.views import router as health_router
    from opsplane.incidents.views import router as incidents_router
    from opsplane.metrics.views import router as metrics_router
    from opsplane.oncall.views import router as oncall_router
    from opsplane.runtime.views import router as runtime_router
    from opsplane.web.incident_views import router as incident_pages_router
    from opsplane.web.status_views import router as status_router
    from opsplane.web.views import router as web_router

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from opsplane.web.signin import keep_writing, limiter_for

        await plane.start()
        # failed dashboard sign-ins, one event per address and window (docs/dashboard.md)
        sign_ins = asyncio.get_running_loop().create_task(keep_writing(limiter_for(app), plane.store))
        try:
            yield
        finally:
            sign_ins.cancel()
            await asyncio.gather(sign_ins, return_exceptions=True)
            await plane.stop()

    # The document is served to viewers at /api/v1/openapi.json (auth.views), not publicly.
    app = FastAPI(title="opsplane", version=_version(), lifespan=lifespan,
                  description="The control plane's API: health, events, metrics, alerts, incidents, "
                              "on-call and the runtime. Every route but /health, /metrics and "
                              "/status.json needs a bearer token (docs/api.md).",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.plane = plane
    app.state.inventory_dir = inventory_dir or Path.cwd()
    errors.install(app)

    @app.get("/health", tags=["control plane"], response_model=OwnHealth,
             responses={503: {"model": OwnHealth, "description": "Starting, a loop has stopped, or "
                                                                  "alerting cycles fail (degraded)."}})
    def own_health() -> JSONResponse:
        """Whether the control plane runs: for load balancers and supervisors, without a token.
        `degraded` (503) while its alerting cycles fail, with the reason."""
        running = bool(plane._tasks) and not any(t.done() for t in plane._tasks)
        failure = plane.alerting_failure
        state: Literal["ok", "starting", "degraded"] = (
            "starting" if not running else "degraded" if failure is not None else "ok")
        body = OwnHealth(status=state, checks=len(plane.targets), environment=plane.env,
                         reason=failure.sentence() if failure is not None else None)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if state == "ok" else 503)

    @app.get("/metrics", tags=["control plane"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus's text format."}})
    def own_metrics() -> Response:
        """The control plane's own metrics, for Prometheus, without a token."""
        return Response(generate_latest(plane.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    for router in (health_router, events_router, auth_router, runtime_router, metrics_router,
                   oncall_router, incidents_router):
        _mount(app, router, "/api/v1")
    _mount(app, intake_router, "/api/v2")  # where Prometheus sends alerts to an Alertmanager
    _mount(app, web_router, "")
    _mount(app, incident_pages_router, "")
    _mount(app, status_router, "")  # the public status page: no login (docs/status-page.md)
    return app


class OwnHealth(BaseModel):
    """`GET /health`."""

    status: Literal["ok", "starting", "degraded"]
    checks: int
    environment: str
    reason: str | None = Field(None, description="Why it is degraded: since when and why its "
                               "alerting cycles fail.")


def _mount(app: FastAPI, router: APIRouter, prefix: str) -> None:
    """Add a domain router's routes to the app itself, so `app.routes` lists every route
    as a plain APIRoute (the role test walks them), each with what the OpenAPI document says
    about it: its role and the refusals of its kind (`api.document.contract`)."""
    from opsplane.api.document import contract

    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"unexpected route type {type(route).__name__} in {router}")
        stated = contract(route)
        app.router.add_api_route(
            prefix + route.path, route.endpoint, methods=sorted(route.methods or ()),
            name=route.name, include_in_schema=route.include_in_schema, tags=route.tags,
            summary=route.summary, description=stated.description,
            response_model=route.response_model, status_code=route.status_code,
            response_class=route.response_class, responses=stated.responses,
            response_description=route.response_description, openapi_extra=stated.openapi_extra,
        )


def _version() -> str:
    from opsplane import __version__

    return __version__
