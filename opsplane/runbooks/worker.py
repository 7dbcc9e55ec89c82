"""`serve`'s runbooks worker: the closed loop (docs/runbooks.md, "The closed loop"; decision 0029).

When an alert opens or joins an incident and the alert's rule names a runbook that
`runbooks.auto` lets run unattended, the worker starts a run of it for the incident (mode
auto, nobody to ask: safe steps run, the run stops at the first that needs a person), drives
it, then watches until the incident's alerts have resolved and the service's checks pass.
Then it resolves the incident as `system:runbook`, saying what the runbook did; otherwise
(the run failed, stopped for a person, or nothing recovered in time) it leaves the incident
open and unacknowledged, so paging goes on, with a note of what was tried.

Each incident's loop is claimed in the store (`runbook-loop:INC-<id>`), renewed while it
runs and marked done when it ends, so it happens once per incident and on one replica; a
`serve` that dies in the middle leaves a claim that lapses, and the next one takes it up and
goes on with the run it finds. The decisions are `auto.py`'s; this module reads and acts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from opsplane.runbooks import auto
from opsplane.workers import LoopWorker, WorkerContext

log = logging.getLogger(__name__)
T = TypeVar("T")

POLL = 2.0  # the longest a new incident waits for the worker when nobody wakes it
VERIFY_EVERY = 1.0  # seconds between two looks at the alerts and checks after the run
LEASE = 30.0  # seconds the claim on an incident's loop lasts past its last renewal


def loop_claim(incident_id: int) -> str:
    """The key of the claim on the closed loop of incident `incident_id`."""
    return f"runbook-loop:INC-{incident_id}"


class Stopping(Exception):
    """`serve` stops: a run being driven stops where it is (the next one resumes it)."""


@dataclass(frozen=True)
class Facts:
    """What the store says of an incident's loop now."""

    open: bool
    acknowledged: bool
    service: str
    severity: str
    alerts: list[auto.Firing]
    run: dict[str, Any] | None  # the loop's run: id, runbook, state, reason, waiting_for, started/ended
    steps: list[auto.StepDone]


class RunbookWorker(LoopWorker):
    """One replica only, since it reads the health worker's live state; and each incident's
    loop is claimed besides, so a replica that takes over after a crash goes on with it."""

    singleton = True

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("runbooks", ctx)
        self._catalog: dict[str, Any] | None = None
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._skipped: dict[int, tuple[Any, ...]] = {}  # incident -> the alerts it was skipped for
        self._stopping = threading.Event()
        self._holder = ""
        self._keeper: Any = None

    # --- the loop over incidents ---------------------------------------------------------------

    async def run(self) -> None:
        from opsplane.runbooks.runner import RENEW_WITHIN, holder_name
        from opsplane.store import claims

        self._holder = holder_name()
        self._keeper = claims.LeaseKeeper(self._renew, now=self.ctx.clock.now, renew_within=RENEW_WITHIN,
                                          what="runbook loop", thread_name="runbook-loop-claims")
        await self.every(POLL, self._round, doing="looking for incidents a runbook may answer")

    async def closing(self) -> None:
        self._stopping.set()
        for task in self._loops.values():
            task.cancel()
        await asyncio.gather(*self._loops.values(), return_exceptions=True)
        if self._keeper is not None:
            self._keeper.close()

    async def _round(self) -> datetime | None:
        if self._catalog is None:
            from opsplane.runbooks.loader import catalog

            found = await asyncio.to_thread(catalog, self.ctx.inventory, self.ctx.inventory_dir)
            self._catalog = {name: loaded.runbook for name, loaded in found.items()}
        for incident_id, start in await self.ctx.in_store(self._candidates):
            self._loops[incident_id] = asyncio.get_running_loop().create_task(
                self._follow(incident_id, start), name=f"runbook-loop:INC-{incident_id}")
        return None

    def _candidates(self) -> list[tuple[int, auto.Start | None]]:
        """Incidents to follow now: those whose loop was left by a `serve` that stopped (None:
        go on with its run), and open, unacknowledged ones whose firing alerts call for a run."""
        from sqlalchemy import select

        from opsplane.incidents.tables import IncidentRow
        from opsplane.store.claims import WorkClaim

        assert self._catalog is not None
        found: list[tuple[int, auto.Start | None]] = []
        with self.ctx.store.session() as session:
            rows = session.scalars(select(IncidentRow).where(IncidentRow.status != "resolved")).all()
            keys = {loop_claim(r.id): r.id for r in rows if r.id not in self._loops}
            claimed = {keys[c.key]: c for c in session.scalars(
                select(WorkClaim).where(WorkClaim.key.in_(list(keys))))}
            self._skipped = {i: seen for i, seen in self._skipped.items() if i in keys.values()}
            for row in rows:
                if row.id in self._loops:
                    continue
                firing = [a for a in _firings(session, row.id) if a.state == "firing"]
                if row.id in claimed:
                    claim = claimed[row.id]
                    if claim.done_at is None and claim.expires_at <= self.ctx.clock.now():
                        # left by a serve that stopped: its run goes on (or, if it never
                        # began, the one its alerts call for now)
                        again = self._plan(row, firing)
                        found.append((row.id, again if isinstance(again, auto.Start) else None))
                    continue
                if row.acknowledged_at is not None:
                    continue  # a person has it
                seen = tuple((a.name, a.severity, tuple(sorted(a.labels.items()))) for a in firing)
                if not firing or self._skipped.get(row.id) == seen:
                    continue
                decided = self._plan(row, firing)
                if isinstance(decided, auto.Skip):
                    self._skipped[row.id] = seen
                    log.info("INC-%s: no runbook runs by itself: %s", row.id, decided.reason)
                    continue
                found.append((row.id, decided))
        return found

    def _plan(self, row: Any, firing: list[auto.Firing]) -> auto.Start | auto.Skip:
        assert self._catalog is not None
        return auto.plan(firing, service=row.service, settings=self.ctx.inventory.runbooks,
                         catalog=self._catalog, inventory=self.ctx.inventory)

    # --- one incident's loop -------------------------------------------------------------------

    async def _follow(self, incident_id: int, start: auto.Start | None) -> None:
        try:
            claim = await self.ctx.in_store(self._take, incident_id)
            if claim is None:
                return  # another replica follows it, or it was done meanwhile
            try:
                with self._keeper.holding(claim):
                    await self._close_loop(incident_id, start)
            except (asyncio.CancelledError, Stopping):
                await asyncio.shield(self.ctx.in_store(self._release, claim))
                raise
            await self.ctx.in_store(self._finish, claim)
        except (asyncio.CancelledError, Stopping):
            pass
        except Exception as exc:
            self.failed(exc)
            log.exception("the closed loop of INC-%s failed; its claim lapses and it is tried again",
                          incident_id)
        finally:
            self._loops.pop(incident_id, None)

    async def _close_loop(self, incident_id: int, start: auto.Start | None) -> None:
        run_id, verify_within = await self.ctx.in_store(self._run_for, incident_id, start)
        if run_id is None:
            return
        await self._off_loop(self._drive, run_id)
        while True:
            facts = await self.ctx.in_store(self._facts, incident_id, run_id)
            assert facts.run is not None
            found = auto.verdict(
                run_state=facts.run["state"], run_reason=facts.run["reason"],
                waiting_for=facts.run["waiting_for"], ended_at=facts.run["ended_at"], alerts=facts.alerts,
                checks=self._checks(facts.service), since=facts.run["started_at"],
                verify_within=verify_within, now=self.ctx.clock.now(), every=VERIFY_EVERY)
            if not isinstance(found, auto.Watch):
                break
            await asyncio.sleep(max(0.0, (found.next_look - self.ctx.clock.now()).total_seconds()))
        await self.ctx.in_store(self._conclude, incident_id, facts, found)
        self.ctx.wake("incidents")  # the resolution (or the page going on) is paging's to send
        self.ctx.wake("notify")

    def _run_for(self, incident_id: int, start: auto.Start | None) -> tuple[int | None, float]:
        """The loop's run for the incident: the one a previous holder started, else a new one
        of `start`'s runbook; and how long recovery may take after it."""
        from opsplane.incidents import service as incidents
        from opsplane.runbooks import service as runs
        from opsplane.runbooks.models import render

        assert self._catalog is not None
        settings = self.ctx.inventory.runbooks
        with self.ctx.store.session() as session:
            earlier = [r for r in runs.get_all(session, incident_id=incident_id)
                       if r.requested_by == auto.ACTOR]
            row = incidents.get_or_raise(session, incident_id=incident_id)
            if earlier:
                run = earlier[-1]  # the first the loop started (newest first)
                rule = auto.covering(settings, severity=row.severity, service=row.service,
                                     runbook=run.runbook)
                return run.id, rule.verify_within if rule else 300.0
            if start is None:
                return None, 0.0
            runbook = render(self._catalog[start.runbook], start.parameters)
            run = runs.create(session, runbook=runbook, parameters=start.parameters, incident_id=incident_id,
                              requested_by=auto.ACTOR, mode="auto", now=self.ctx.clock.now())
            log.info("INC-%s: %s fired; runbook %s runs unattended (run %s)", incident_id, start.alert,
                     start.runbook, run.id)
            return run.id, start.verify_within

    def _drive(self, run_id: int) -> str:
        """Drive the run with nobody to ask (on a thread of its own: steps wait and probe)."""
        from opsplane.runbooks.flows import LivePlatform
        from opsplane.runbooks.runner import Runner, RunTakenOver

        samples = self.ctx.samples
        platform = LivePlatform(self.ctx.inventory, base_dir=self.ctx.inventory_dir, store=self.ctx.store,
                                clock=self.ctx.clock, environ=self.ctx.environ,
                                samples=samples.locked_source if samples is not None else None)
        runner = Runner(self.ctx.store, platform, clock=self.ctx.clock, actor=auto.ACTOR, person=None,
                        sleep=self._sleep, holder=self._holder)
        try:
            return runner.drive(run_id)
        except RunTakenOver:
            return "taken"  # someone drives it (`opsplane runbook resume`): the loop watches
        finally:
            runner.close()

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise Stopping()

    def _checks(self, service: str) -> list[auto.CheckSeen]:
        """The service's checks as the health worker last saw them (read on the event loop)."""
        from opsplane.health.models import State

        checks = self.ctx.checks
        if checks is None:
            return []
        latest, at = checks.latest, checks.checked_at
        seen = []
        for target in checks.targets:
            if target.component != service:
                continue
            result = latest.get(target.id)
            passes = result is not None and result.state in (State.OK, State.WARNING)
            seen.append(auto.CheckSeen(target.id, passes, at.get(target.id)))
        return seen

    def _facts(self, incident_id: int, run_id: int | None) -> Facts:
        from opsplane.incidents import service as incidents
        from opsplane.runbooks import service as runs

        with self.ctx.store.session() as session:
            row = incidents.get_or_raise(session, incident_id=incident_id)
            run, steps = None, []
            if run_id is not None:
                found = runs.get(session, run_id)
                run = {"id": found.id, "runbook": found.runbook, "state": found.state, "reason": found.reason,
                       "waiting_for": found.waiting_for, "started_at": found.started_at,
                       "ended_at": found.ended_at}
                last: dict[str, Any] = {}
                for step in runs.steps(session, run_id):
                    if step.state == "done":
                        last[step.step_id] = step  # later attempts replace earlier ones, in place
                steps = [auto.StepDone(s.step_id, s.kind, s.outcome or "", s.output) for s in last.values()]
            return Facts(row.status != "resolved", row.acknowledged_at is not None, row.service, row.severity,
                         _firings(session, incident_id), run, steps)

    def _conclude(self, incident_id: int, facts: Facts, found: auto.Verdict) -> None:
        """Resolve the incident (recovery verified) or hand it over, with the run's verdict as
        an event on its timeline. A person who acknowledged it meanwhile keeps it: they get a
        note, not a resolution."""
        from opsplane.incidents import service as incidents
        from opsplane.runbooks import service as runs

        assert facts.run is not None
        now = self.ctx.clock.now()
        runbook, run_id = facts.run["runbook"], facts.run["id"]
        with self.ctx.store.session() as session:
            run = runs.get(session, run_id)
            current = incidents.get_or_raise(session, incident_id=incident_id)
            yours = current.status != "resolved" and current.acknowledged_at is None
            if isinstance(found, auto.Verified):
                runs.loop_verdict(session, run, recovered=True, said=found.said, actor=auto.ACTOR, now=now)
                summary, root_cause = auto.resolution(runbook=runbook, run_id=run_id, service=facts.service,
                                                      steps=facts.steps, seen=found)
                if yours:
                    incidents.resolve(session, incident_id=incident_id, actor=auto.ACTOR, now=now,
                                      settings=self.ctx.inventory.incidents, summary=summary,
                                      root_cause=root_cause)
                elif current.status != "resolved":
                    incidents.add_note(session, incident_id=incident_id, text=summary, actor=auto.ACTOR,
                                       now=now)
                return
            assert isinstance(found, auto.Escalate)
            runs.loop_verdict(session, run, recovered=False, said=found.reason, actor=auto.ACTOR, now=now)
            if current.status != "resolved":
                note = auto.hand_over(runbook=runbook, run_id=run_id, run_state=facts.run["state"],
                                      reason=found.reason, steps=facts.steps)
                incidents.add_note(session, incident_id=incident_id, text=note, actor=auto.ACTOR, now=now)

    # --- claims --------------------------------------------------------------------------------

    def _take(self, incident_id: int) -> Any:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            return claims.take(session, loop_claim(incident_id), holder=self._holder,
                               now=self.ctx.clock.now(), lease=LEASE)

    def _renew(self, claim: Any, now: datetime) -> bool:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            return claims.renew(session, claim, now)

    def _finish(self, claim: Any) -> None:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            claims.finish(session, claim, self.ctx.clock.now())

    def _release(self, claim: Any) -> None:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            claims.release(session, claim, self.ctx.clock.now())

    # --- threads -------------------------------------------------------------------------------

    async def _off_loop(self, work: Callable[..., T], *args: Any) -> T:
        """`work` on a daemon thread of its own: a run that waits minutes must not hold up the
        store's threads, nor `serve`'s exit (it stops at its next sleep, `Stopping`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(outcome: Callable[[], None]) -> None:
            if not future.done():
                outcome()

        def thread() -> None:
            try:
                result = work(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                error = exc
                call: Callable[[], None] = lambda: future.set_exception(error)  # noqa: E731
            else:
                call = lambda: future.set_result(result)  # noqa: E731
            try:
                loop.call_soon_threadsafe(settle, call)
            except RuntimeError:
                pass  # the event loop is closed: serve has stopped

        threading.Thread(target=thread, name="runbook-loop-run", daemon=True).start()
        return await future


def _firings(session: Any, incident_id: int) -> list[auto.Firing]:
    """The incident's alerts, oldest first, each in the state the store holds it in now."""
    from opsplane.alerts.tables import AlertRow
    from opsplane.incidents import service as incidents
    from opsplane.runbooks.models import named_in

    found: dict[str, auto.Firing] = {}
    for joined in incidents.get_alerts(session, incident_id=incident_id):
        row = session.get(AlertRow, joined.fingerprint)
        found[joined.fingerprint] = auto.Firing(
            name=joined.alertname, severity=joined.severity,
            labels=dict(row.labels) if row is not None else {},
            runbook=named_in(row.annotations or {}) if row is not None else None,
            state=row.state if row is not None else "gone")
    return list(found.values())


def build(ctx: WorkerContext) -> RunbookWorker | None:
    """Only when the inventory lets some runbook run by itself (`runbooks.auto`)."""
    return RunbookWorker(ctx) if ctx.inventory.runbooks.auto else None
