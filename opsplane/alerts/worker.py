"""The alerts worker of `serve`: the rule cycle, and alerts received through the API.

One alerting cycle (evaluate, store, mute, notify) runs every evaluation interval, and one as
soon as what the rules read changes (a scrape's `up`, a check that starts, reaches its
threshold of or stops failing, an alert received), at most one such cycle every CHANGE_GAP
seconds. When the runtime says a service's process exited, the next cycle skips that pause and
waits (LOOK_WAIT at most) for the service's checks and scrapes started then, so it sees what
they found (docs/decisions/0016-runtime-exits-start-checks.md). Cycles run on the store's
threads: they read the samples under their lock and write to the store.

Without anything scraped nor a Prometheus to read, neither the engine nor the rules are
loaded: they come in with the first failing check, the first service the runtime gave up on
or the first alert received. Until then, every evaluation interval is recorded as one whose
rules had nothing to read, so that `opsplane alerts` can tell a quiet platform from one that
nothing watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from opsplane.health.targets import CheckTarget
from opsplane.metrics.scrape import scrape_targets
from opsplane.workers import STUCK_AFTER, LoopWorker, WorkerContext, first_line

if TYPE_CHECKING:
    from opsplane.alerts.evaluations import Evaluation
    from opsplane.alerts.flows import Alerting
    from opsplane.alerts.intake import ReceivedAlert
    from opsplane.metrics.remote import PrometheusClient

log = logging.getLogger("opsplane.server")
# The shortest time between two alerting cycles started by changed inputs: a burst of
# changes (many checks failing at once) is one cycle, not one each.
CHANGE_GAP = 1.0
# After the runtime said a service's process exited, the rules wait this long at most for
# the service's checks and scrapes started then (a refused connection takes a millisecond; a
# check that hangs until its timeout must not hold back what is already known).
LOOK_WAIT = 0.5


@dataclass(frozen=True)
class CycleFailure:
    """Alerting cycles failing for the same reason since `since`, `count` of them in a row."""

    reason: str
    since: datetime
    count: int = 0

    def sentence(self) -> str:
        return (f"alerting cycles fail since {self.since.isoformat(timespec='seconds')} "
                f"({self.count} in a row): {self.reason}")


class AlertsWorker(LoopWorker):
    """The rule cycle over the sample store or a Prometheus, and the received-alert intake.
    One replica only: a cycle decides the notifications of the whole platform."""

    singleton = True

    def __init__(self, ctx: WorkerContext) -> None:
        interval = ctx.inventory.alerting.evaluation_interval
        super().__init__("alerts", ctx, stuck_after=max(STUCK_AFTER, 3 * interval))
        self.alerting: Alerting | None = None
        self.prometheus: PrometheusClient | None = None
        # Why the cycles fail, since when and how many in a row; None while the last one
        # succeeded. /health says it.
        self.failure: CycleFailure | None = None
        # Set when what the rules read changed in a way that can start or end an alert: the
        # next cycle runs at once instead of at the next evaluation interval.
        self._evaluate_soon = asyncio.Event()
        # A process exited: the next cycle skips the pause between change-started cycles and
        # waits for the checks and scrapes started for it (`_looking`).
        self._urgent = asyncio.Event()
        self._looking: set[asyncio.Future[Any]] = set()
        self._built = asyncio.Event()
        self._by_id: dict[str, CheckTarget] = {}
        self._criticality = {name: c.criticality.value for _, name, c in ctx.inventory.components()}
        ctx.alerts = self
        ctx.rules = self
        # backup policies and SLOs feed the rules their own series from the start
        # (backup/series.py, slo/series.py)
        if (scrape_targets(ctx.inventory, ctx.env) or ctx.inventory.metrics.source == "prometheus"
                or ctx.inventory.backup.policies or ctx.inventory.slos):
            self._build()

    def _build(self) -> None:
        """The alerting machinery over the sample store (made if nothing is scraped, for the
        checks' own series) or over the configured Prometheus."""
        from opsplane.alerts.flows import Alerting, dependencies
        from opsplane.alerts.intake import AlertInbox

        inventory = self.ctx.inventory
        if inventory.metrics.source == "prometheus":
            from opsplane.metrics.remote import PrometheusClient, evaluate_prometheus

            self.prometheus = PrometheusClient.from_settings(inventory.metrics, self.ctx.environ)
            evaluate = evaluate_prometheus(self.prometheus)
        else:
            from opsplane.alerts.engine import evaluate_with

            samples, checks = self.ctx.samples, self.ctx.checks
            assert samples is not None, "the metrics worker is registered before the alerts worker"
            targets = list(checks.targets) if checks is not None else []
            # opsplane's own scrape: a series per failing check, 16 per SLO (slo/series.py)
            samples.sample_store(series_limit=len(targets) + 16 * len(inventory.slos))
            self._by_id = {t.id: t for t in targets}
            source = samples.locked_source()
            assert source is not None
            evaluate = evaluate_with(source)
        inbox = AlertInbox(self.ctx.clock, max_per_sender=inventory.alerting.intake.max_alerts_per_sender)
        generated: list[Any] = []
        if inventory.slos and inventory.metrics.source != "prometheus":  # a Prometheus has its own
            from opsplane.slo.rules import slo_rules

            generated = slo_rules(inventory.slos)
        self.alerting = Alerting(inventory.alerting, store=self.ctx.store, evaluate=evaluate,
                                 clock=self.ctx.clock, depends_on=dependencies(inventory),
                                 environ=self.ctx.environ,
                                 inbox=inbox,
                                 incidents=inventory.incidents, channels=inventory.channels,
                                 generated_rules=generated)
        self._built.set()

    def _start_alerting(self) -> None:
        """Build alerting and run a cycle now; a failure (the store unreachable) is logged and
        tried again at the next reason to, never raised into the caller."""
        try:
            self._build()
        except Exception:
            log.exception("could not start alerting; trying again at the next failing check")
            self.alerting = None
            return
        self._evaluate_soon.set()

    # --- what wakes it ------------------------------------------------------------------

    def wake(self) -> None:
        """What the rules read changed: a cycle now (alerting started first, when a check fails
        or the runtime gave up on a service and it was not running)."""
        if not self.running:
            return
        if self.alerting is None:
            checks, liveness = self.ctx.checks, self.ctx.liveness
            failing = checks is not None and bool(checks.failures)
            if failing or (liveness is not None and liveness.down_for_good()):
                self._start_alerting()
            return
        self._evaluate_soon.set()

    def hurry(self, waiting_for: Sequence[asyncio.Future[Any]]) -> None:
        liveness = self.ctx.liveness
        if self.alerting is None and self.running and liveness is not None and liveness.down_for_good():
            self._start_alerting()
        for run in waiting_for:
            self._looking.add(run)
            run.add_done_callback(self._looking.discard)
        self._urgent.set()
        self._evaluate_soon.set()

    def receive_alerts(self, alerts: Sequence[ReceivedAlert]) -> list[ReceivedAlert] | None:
        """Hand alerts received through the API (a Prometheus's) to alerting, started for them
        if it was not running, and run a cycle now. Returns the alerts refused because their
        sender holds as many as it may (`alerting.intake.max_alerts_per_sender`); None when
        alerting could not start."""
        if self.alerting is None and self.running:
            self._start_alerting()
        if self.alerting is None or self.alerting.inbox is None:
            return None
        metrics = self.ctx.metrics
        refused = self.alerting.inbox.put(alerts)
        metrics.alerts_received.inc(len(alerts) - len(refused))
        if refused:
            metrics.alerts_refused.labels("sender_limit").inc(len(refused))
        if len(refused) < len(alerts):
            self._evaluate_soon.set()
        return refused

    def failing(self) -> str | None:
        return self.failure.sentence() if self.failure is not None else None

    # --- the loop -----------------------------------------------------------------------

    async def opening(self) -> None:
        if self.alerting is None and await self.ctx.in_store(self._alerts_were_stored):
            self._build()  # alerts of an earlier run go on (and resolve) from here

    async def closing(self) -> None:
        if self.prometheus is not None:
            self.prometheus.close()

    async def run(self) -> None:
        await self._watch_without_rules()
        await self._evaluate_rules()

    async def _watch_without_rules(self) -> None:
        """Until alerting starts, record every evaluation interval that the rules had nothing
        to read (nothing scraped, no check failing)."""
        from opsplane.alerts import evaluations

        interval = self.ctx.inventory.alerting.evaluation_interval
        while self.alerting is None:
            now = self.ctx.clock.now()
            evaluation = evaluations.by_this_process(now=now, interval=interval,
                                                     started_at=self.ctx.started_at or now, rules=0)
            try:
                await self.ctx.in_store(self._record_evaluation, evaluation)
            except Exception as exc:  # the store may be down; the next interval tries again
                self.failed(exc)
                log.warning("could not record that the rules have nothing to read: %s", exc)
            self.ran()
            self.expect(interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._built.wait(), interval)

    async def _evaluate_rules(self) -> None:
        alerting = self.alerting
        assert alerting is not None
        interval = alerting.settings.evaluation_interval
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        quiet_until = 0.0
        while True:
            self.expect(due - loop.time())
            await self._next_cycle(due, quiet_until)
            try:
                samples = self.ctx.samples
                if samples is not None and samples.store is not None:
                    await self.ctx.in_store(self._ingest_own_series)
                report = await self.ctx.in_store(alerting.run_once)
                # pages to send, or an alert that changed state and may have opened an incident
                if report.queued or report.sent or report.evaluation.transitions:
                    self.ctx.wake("incidents")
                    self.ctx.wake("runbooks")  # an incident opened may call for its runbook
                    self.ctx.wake("notify")
            except Exception as exc:  # a cycle that fails must not end alerting; the next one retries
                self._cycle_failed(exc)
            else:
                self._cycle_succeeded(len(report.refused))
            self.ran()
            quiet_until = loop.time() + CHANGE_GAP
            if loop.time() >= due:
                due += interval
                if due < loop.time():  # a slow cycle: skip the slots it overran
                    due += math.ceil((loop.time() - due) / interval) * interval

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

    def _cycle_failed(self, exc: Exception) -> None:
        """Count it, say it on /health, and log it: with its traceback when the reason is new,
        in a line while the same reason goes on."""
        reason = first_line(exc)
        self.failed(exc)
        self.ctx.metrics.alert_cycle_failures.inc()
        failure = self.failure
        if failure is None or failure.reason != reason:
            log.exception("an alerting cycle failed; the next one tries again: %s", reason)
            failure = CycleFailure(reason=reason, since=self.ctx.clock.now())
        else:
            log.warning("an alerting cycle failed again (%d in a row): %s", failure.count + 1, reason)
        self.failure = replace(failure, count=failure.count + 1)

    def _cycle_succeeded(self, dropped: int) -> None:
        if self.failure is not None:
            log.info("alerting cycles succeed again after %d failures", self.failure.count)
        self.failure = None
        self.ctx.metrics.alert_cycle_last_success.set(self.ctx.clock.now().timestamp())
        if dropped:
            self.ctx.metrics.alerts_dropped.inc(dropped)

    # --- on the store's threads ---------------------------------------------------------

    def _ingest_own_series(self) -> None:
        """opsplane's own series for the rules (`alerts.own_series`: failing checks, services
        the runtime gave up on), as one scrape of "opsplane"."""
        from opsplane.alerts.own_series import own_samples

        checks, liveness, samples = self.ctx.checks, self.ctx.liveness, self.ctx.samples
        assert samples is not None
        failures = dict(checks.failures) if checks is not None else {}
        not_running = liveness.down_for_good() if liveness is not None else {}
        at = self.ctx.clock.now().timestamp()
        backups = list(self.ctx.backups.samples) if self.ctx.backups is not None else []
        slos = list(self.ctx.slos.samples) if self.ctx.slos is not None else []
        reports = list(self.ctx.reports.samples) if self.ctx.reports is not None else []
        samples.append_scrape("opsplane", at, own_samples(
            failures=failures, checks=self._by_id, not_running=not_running,
            criticality=self._criticality, env=self.ctx.env) + backups + slos + reports)

    def _record_evaluation(self, evaluation: Evaluation) -> None:
        from opsplane.alerts import evaluations

        with self.ctx.store.session() as session:
            evaluations.record(session, evaluation)

    def _alerts_were_stored(self) -> bool:
        try:
            with self.ctx.store.engine.connect() as connection:
                return connection.execute(text("SELECT 1 FROM alert_states LIMIT 1")).first() is not None
        except Exception:  # no such table in an older store: no alerts to carry on
            return False


def build(ctx: WorkerContext) -> AlertsWorker:
    return AlertsWorker(ctx)
