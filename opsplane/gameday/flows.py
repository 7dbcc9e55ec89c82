"""Playing a game day: check the scenario, inject its fault, watch the event log until what is
expected came or the fault's time is up, undo the fault (always), wait for recovery and
resolution, and store the report.

Whoever plays a game day holds its claim (`gameday:ID`, renewed while it plays). One whose
player died with its fault in force is found by `recover` (the CLI's `gameday run` and `serve`'s
game day worker call it): its claim lapsed, so the fault is undone from the record kept with
it and the game day ends `interrupted`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsplane.clock import Clock
from opsplane.config.models import Inventory
from opsplane.errors import UsageError
from opsplane.gameday import measures as measuring
from opsplane.gameday import report as reporting
from opsplane.gameday import service
from opsplane.gameday.catalog import scenarios
from opsplane.gameday.datastores import FaultRefused
from opsplane.gameday.faults import Fault, Where, open_fault
from opsplane.gameday.models import Scenario
from opsplane.incidents.models import SEVERITIES
from opsplane.store import Store, claims

log = logging.getLogger(__name__)

LEASE = 30.0
POLL = 1.0
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Played:
    """A game day that ended: its id, state, verdict and report."""

    id: int
    state: str
    verdict: str
    report: dict[str, Any] | None
    markdown: str


def holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def scenario_named(inventory: Inventory, name: str, *, max_duration: float | None = None) -> Scenario:
    """The scenario `name` (with `max_duration` when given); UsageError naming the known ones."""
    known = scenarios(inventory)
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(f"no game day scenario {name!r}{hint} (known: {', '.join(sorted(known)) or 'none'})")
    found = known[name]
    if max_duration is not None:
        if not 0 < max_duration <= 4 * 3600:
            raise UsageError("--max-duration must be more than 0 and at most 4h")
        found = found.model_copy(update={"max_duration": max_duration})
    return found


class GameDays:
    """Plays game days on `inventory`'s platform, recording them in `store`. `wait(seconds)`
    sleeps and returns True when the game day is asked to stop early (its fault is undone
    then, as at the end); `open` builds a scenario's fault."""

    def __init__(self, store: Store, inventory: Inventory, *, base_dir: Path, environ: Mapping[str, str],
                 clock: Clock, actor: str, wait: Callable[[float], bool] | None = None,
                 open: Callable[[Scenario, Where], Fault] = open_fault, progress: Progress | None = None,
                 poll: float = POLL) -> None:
        self.store, self.inventory, self.base_dir, self.environ = store, inventory, base_dir, environ
        self.clock, self.actor, self.open, self.poll = clock, actor, open, poll
        self.stopping = threading.Event()
        self.wait = wait or self.stopping.wait
        self.say = progress or (lambda _text: None)
        self.holder = holder()
        self._keeper: claims.LeaseKeeper[claims.Claim] = claims.LeaseKeeper(
            self._renew, now=clock.now, renew_within=LEASE / 2, what="game day", thread_name="gameday-claims")

    def close(self) -> None:
        self._keeper.close()

    def _renew(self, claim: claims.Claim, now: Any) -> bool:
        with self.store.session() as session:
            return claims.renew(session, claim, now)

    def _where(self, run_id: int = 0) -> Where:
        return Where(self.inventory, self.base_dir, self.environ, self.actor, run_id)

    # --- checking -----------------------------------------------------------------------------

    def check(self, name: str, scenario: Scenario) -> None:
        """FaultRefused (recorded as `gameday.refused`) when the scenario cannot be played here."""
        try:
            self.open(scenario, self._where()).check()
        except FaultRefused as exc:
            with self.store.session() as session:
                service.refused(session, name=name, scenario=scenario, reason=str(exc), actor=self.actor,
                                now=self.clock.now())
            raise

    # --- playing ------------------------------------------------------------------------------

    def play(self, name: str, scenario: Scenario, *, trigger: str, requested: int | None = None) -> Played:
        """Check, inject, watch, undo, settle, report. `requested`: a game day asked for through the
        API (its row exists, and fails when the scenario is refused now); otherwise a new one is
        made. UsageError when another player holds a requested one."""
        now = self.clock.now()
        if requested is not None:
            with self.store.session() as session:
                claim = claims.take(session, service.run_claim(requested), holder=self.holder, now=now,
                                    lease=LEASE)
            if claim is None:
                raise UsageError(f"game day {requested} is claimed by another player")
            try:
                self.check(name, scenario)
            except FaultRefused as exc:
                with self.store.session() as session:
                    row = service.get_or_raise(session, gameday_id=requested)
                    service.failed(session, row, error=str(exc), actor=self.actor, now=self.clock.now())
                    claims.finish(session, claim, self.clock.now())
                raise
            with self.store.session() as session:
                service.get_or_raise(session, gameday_id=requested).state = "running"
            gameday_id = requested
        else:
            self.check(name, scenario)
            with self.store.session() as session:
                row = service.create(session, name=name, scenario=scenario, trigger=trigger, actor=self.actor,
                                     now=now, max_duration=scenario.max_duration)
                gameday_id = row.id
                taken = claims.take(session, service.run_claim(gameday_id), holder=self.holder, now=now,
                                    lease=LEASE)
            assert taken is not None  # a new game day's claim is nobody else's
            claim = taken
        with self._keeper.holding(claim):
            played = self._play(gameday_id, name, scenario)
        with self.store.session() as session:
            claims.finish(session, claim, self.clock.now())
        return played

    def _play(self, gameday_id: int, name: str, scenario: Scenario) -> Played:
        fault = self.open(scenario, self._where(gameday_id))
        injected_at = self.clock.now()
        self.say(f"game day {gameday_id}: injecting {scenario.kind} on {scenario.target} "
                 f"(at most {scenario.max_duration:g} s)")
        try:
            record = fault.inject()
        except Exception as exc:  # nothing recorded to undo: the run fails with the reason
            with self.store.session() as session:
                row = service.get_or_raise(session, gameday_id=gameday_id)
                service.failed(session, row, error=f"the fault could not be injected: {exc}",
                               actor=self.actor, now=self.clock.now())
            self.say(f"game day {gameday_id}: the fault could not be injected: {exc}")
            return Played(gameday_id, "failed", "fail", None, "")
        with self.store.session() as session:
            service.injected(session, service.get_or_raise(session, gameday_id=gameday_id), undo=record,
                             actor=self.actor, now=injected_at)
        watched = {scenario.target, *scenario.watch}
        judged = self._judged(scenario)
        during: set[str] = {m for m in scenario.expect if m != "resolve"}
        try:
            self._watch(injected_at, watched, judged, until=during, limit=scenario.max_duration)
        finally:
            undone, outcome = self._undo(fault, record)
            with self.store.session() as session:
                service.ended(session, service.get_or_raise(session, gameday_id=gameday_id), undone=undone,
                              actor=self.actor, now=self.clock.now(), outcome=outcome)
            self.say(f"game day {gameday_id}: fault undone: {undone}")
        ended_at = self.clock.now()
        waited = (ended_at - injected_at).total_seconds()
        # what comes after a fault ends (recovery, resolution) is waited for a while longer; a
        # detection or page that did not come while the fault was in force is not
        after: set[str] = {m for m in scenario.expect if m in ("recover", "resolve")}
        if after:
            self._watch(injected_at, watched, judged, until=after, limit=waited + scenario.settle)
        return self._finish(gameday_id, name, scenario, injected_at, ended_at, undone, outcome, watched,
                            judged)

    def _undo(self, fault: Fault, record: dict[str, Any]) -> tuple[str, str]:
        try:
            return fault.undo(record), "ok"
        except Exception as exc:  # said in the report and the event: a person must put it back
            log.exception("a game day's fault could not be undone")
            return f"the fault could not be undone: {exc}", "failed"

    def _judged(self, scenario: Scenario) -> measuring.Judged:
        policy = self.inventory.incidents.policy
        return measuring.Judged(
            expect=set(scenario.expect), severity=scenario.severity,
            targets={name: scenario.target_of(name) for name in ("detect", "page", "recover", "resolve")},
            response={s: policy(s).response_time for s in SEVERITIES},
            resolution={s: policy(s).resolution_target for s in SEVERITIES})

    def _measure(self, injected_at: Any, watched: set[str], judged: measuring.Judged, *,
                 finished: bool) -> measuring.Measures:
        with self.store.session() as session:
            found = service.signals(session, since=injected_at)
        return measuring.measure(found, injected_at=injected_at, watched=watched, judged=judged,
                                 now=self.clock.now(), finished=finished)

    def _watch(self, injected_at: Any, watched: set[str], judged: measuring.Judged, *, until: set[str],
               limit: float) -> None:
        """Read the measures every `poll` seconds until those in `until` were all seen, `limit`
        seconds after the injection passed, or a stop was asked for."""
        said: set[str] = set()
        while True:
            found = self._measure(injected_at, watched, judged, finished=False)
            for m in found.measures:
                if m.at is not None and m.name not in said:
                    said.add(m.name)
                    self.say(f"  {m.name}: after {m.seconds:.1f} s ({m.evidence})")
            if until <= found.seen:
                return
            left = limit - (self.clock.now() - injected_at).total_seconds()
            if left <= 0 or self.wait(min(self.poll, left)):
                return

    def _finish(self, gameday_id: int, name: str, scenario: Scenario, injected_at: Any, ended_at: Any,
                undone: str, outcome: str, watched: set[str], judged: measuring.Judged) -> Played:
        found = self._measure(injected_at, watched, judged, finished=True)
        verdict = measuring.verdict(found, undone=outcome == "ok")
        now = self.clock.now()
        document = reporting.build(
            gameday_id=gameday_id, scenario=name, definition=scenario.model_dump(mode="json"), measures=found,
            verdict=verdict, injected_at=injected_at, ended_at=ended_at, finished_at=now, undone=undone,
            error="" if outcome == "ok" else undone)
        text = reporting.markdown(document)
        with self.store.session() as session:
            service.finish(session, service.get_or_raise(session, gameday_id=gameday_id), report=document,
                           markdown=text, verdict=verdict, actor=self.actor, now=now)
        self.say(f"game day {gameday_id}: {verdict}")
        return Played(gameday_id, "finished", verdict, document, text)

    # --- after a crash ------------------------------------------------------------------------

    def recover(self) -> list[str]:
        """Undo the faults of game days whose player died (their claim lapsed); what was done."""
        done: list[str] = []
        with self.store.session() as session:
            stale = [(row.id, row.state) for row in service.active(session) if row.state != "requested"]
        for gameday_id, _state in stale:
            now = self.clock.now()
            with self.store.session() as session:
                claim = claims.take(session, service.run_claim(gameday_id), holder=self.holder, now=now,
                                    lease=LEASE)
            if claim is None:
                continue  # its player is alive
            with self.store.session() as session:
                row = service.get_or_raise(session, gameday_id=gameday_id)
                state, record, definition = row.state, row.undo, dict(row.definition)
            undone = ("the fault was already undone" if state == "ended"
                      else "nothing was recorded as injected")
            if state == "injected" and record is not None:
                fault = self.open(Scenario.model_validate(definition), self._where(gameday_id))
                undone, _ = self._undo(fault, record)
            with self.store.session() as session:
                row = service.get_or_raise(session, gameday_id=gameday_id)
                service.interrupted(session, row, undone=undone, actor=self.actor, now=self.clock.now())
                claims.finish(session, claim, self.clock.now())
            done.append(f"game day {gameday_id} was cut off: {undone}")
        return done
