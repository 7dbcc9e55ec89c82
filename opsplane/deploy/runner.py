"""Advancing deploys: each round takes the current step of a deploy from the store under a
claim, does it (or one round of it, for steps that watch), and records the outcome.

The world is reached only through `Platform` (the runtime, the proxy, checks, metrics and
incidents: `deploy.platform`), so the step logic reads as the manual's procedure. A step's claim
is `deploy:<id>:<step>`; it is finished in the transaction that records the step done, so a
step recorded as done is never repeated, and one cut off by a crash is done again by the next
holder (every step is idempotent, see `deploy.plan`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session

from opsplane.clock import Clock
from opsplane.deploy import service
from opsplane.deploy.analysis import Interval, Verdict, analyse
from opsplane.deploy.models import DeploySettings
from opsplane.deploy.tables import DeployRow
from opsplane.errors import OpsplaneError
from opsplane.store import claims

log = logging.getLogger("opsplane.deploy")
ACTOR = "system:deploy"
LEASE = 60.0


class StepFailed(OpsplaneError):
    """A step could not be done: the deploy is rolled back, with this as the reason."""


class Platform(Protocol):
    """What a deploy does to the world and reads from it; every method is idempotent."""

    def blocking(self, service: str) -> list[str]:
        """Open P0/P1 incidents and firing P0/P1 alerts on the service or its dependencies."""
        ...

    def main_versions(self, service: str) -> dict[int, str | None]:
        """The release each instance of the service's own group runs, by instance number."""
        ...

    def start(self, service: str, version: str, instances: int) -> list[str]:
        """Run `instances` instances of `version` beside the service's own (no requests yet),
        healthy within the deploy's health timeout; their names. StepFailed otherwise."""
        ...

    def stop_extra(self, service: str, version: str) -> None: ...

    def smoke(self, service: str, version: str) -> list[str]:
        """The smoke tests' failures against each instance of `version`; empty when all pass."""
        ...

    def shift(self, service: str, version: str, percent: float, *,
              drained: Sequence[int] = ()) -> dict[str, Any]:
        """`percent` % of requests to the extra instances of `version`, the rest to the service's
        own, none to the `drained` instances of its own; proven on live answers."""
        ...

    def replace(self, service: str, index: int, version: str) -> None:
        """Instance `index` of the service's own group on `version`, healthy; StepFailed otherwise."""
        ...

    def set_release(self, service: str, version: str) -> None: ...

    def healthy(self, service: str) -> str | None:
        """None when the service's checks pass; else what fails."""
        ...

    def extra_healthy(self, service: str, version: str) -> str | None:
        """None when every extra instance of `version` runs and passes the checks; else what fails."""
        ...

    def intervals(self, service: str, versions: Sequence[str], start: datetime, end: datetime,
                  interval: float) -> dict[str, list[Interval]]: ...

    def p0_alerts(self, service: str, since: datetime) -> list[str]: ...

    def open_incident(self, session: Session, deploy: DeployRow, reason: str,
                      severity: str) -> int | None: ...


class _Overtaken(Exception):
    """The claim on a step passed to another holder while this one did it."""


@dataclass
class Outcome:
    """What one round of a step came to."""

    done: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    rollback: str | None = None
    pause: str | None = None
    verdict: dict[str, Any] | None = None


class Runner:
    """Advances every deploy that `serve` should move, one round at a time."""

    def __init__(self, settings: DeploySettings, platform: Platform,
                 sessions: Callable[[], AbstractContextManager[Session]], *, clock: Clock,
                 holder: str) -> None:
        self.settings = settings
        self.platform = platform
        self.sessions = sessions
        self.clock = clock
        self.holder = holder
        self._held: dict[str, claims.Claim] = {}

    def round(self) -> int:
        """One round over the deploys to advance; how many moved."""
        with self.sessions() as session:
            ids = [row.id for row in service.advancing(session)]
        moved = 0
        for deploy_id in ids:
            try:
                moved += self.advance(deploy_id)
            except Exception:  # noqa: BLE001 - one deploy's fault must not stop the others
                log.exception("deploy %s: the round failed; it is tried again next round", deploy_id)
        return moved

    def advance(self, deploy_id: int) -> int:
        """One round of deploy `deploy_id`'s current step; 1 when it moved on."""
        now = self.clock.now()
        with self.sessions() as session:
            row = service.get(session, deploy_id)
            if row.state == "queued":
                service.transition(session, row, "running", actor=ACTOR, now=now)
            if row.state not in service.ADVANCING:
                return 0
            if not service.steps_left(row):
                self._finish(session, row, now)
                return 1
            key = self._key(row)
            claim = self._claim(session, key, now)
            if claim is None:
                return 0  # another holder does this step
            if row.step_started_at is None:
                row.step_started_at = now
            step = service.current_step(row)
            snapshot = _Snapshot.of(row)
        try:
            outcome = self._do(step, snapshot, now)
        except StepFailed as exc:
            outcome = Outcome(rollback=str(exc))
        try:
            with self.sessions() as session:
                row = service.get(session, deploy_id)
                if row.state not in service.ADVANCING or self._key(row) != key:
                    return 0  # an operator paused, aborted or promoted meanwhile
                return self._record(session, row, key, step, outcome, self.clock.now())
        except _Overtaken:
            log.warning("deploy %s: step %s was taken over by another holder; its outcome is theirs",
                        deploy_id, key)
            return 0

    # --- recording ------------------------------------------------------------------------

    def _record(self, session: Session, row: DeployRow, key: str, step: dict[str, Any], outcome: Outcome,
                now: datetime) -> int:
        if "percent" in outcome.details:
            row.percent = float(outcome.details["percent"])
        if outcome.verdict is not None:
            service.record_verdict(session, row, outcome.verdict, actor=ACTOR, now=now)
        if outcome.rollback and row.state == "running":
            self._release_claim(session, key, now)
            self._roll_back(session, row, outcome.rollback, now)
            return 1
        if outcome.pause:
            self._release_claim(session, key, now)
            service.transition(session, row, "paused", actor=ACTOR, now=now, reason=outcome.pause)
            if outcome.rollback:  # a rollback that could not go all the way: a person decides
                self._page(session, row, outcome.pause)
            return 1
        if outcome.rollback:  # the rollback itself failed
            self._release_claim(session, key, now)
            service.transition(session, row, "failed", actor=ACTOR, now=now, reason=outcome.rollback)
            self._page(session, row, f"rollback of deploy {row.id} failed: {outcome.rollback}")
            return 1
        if outcome.details.get("extend"):
            row.extensions += 1
            row.updated_at = now
            return 1
        if not outcome.done:
            return 0
        held = self._held.pop(key, None)
        if held is not None and not claims.finish(session, held, now):
            raise _Overtaken(key)  # rolls this transaction back: the outcome is the new holder's
        service.step_done(session, row, actor=ACTOR, now=now, details=outcome.details)
        if not service.steps_left(row):
            self._finish(session, row, now)
        return 1

    def _finish(self, session: Session, row: DeployRow, now: datetime) -> None:
        if row.state == "rolling_back":
            irreversible = row.to_version in self.settings.for_service(row.service).irreversible
            service.transition(session, row, "rolled_back", actor=ACTOR, now=now,
                               reason=row.reason or "rolled back",
                               details={"irreversible": irreversible})
        else:
            service.transition(session, row, "succeeded", actor=ACTOR, now=now,
                               reason=f"{row.service} runs {row.to_version}")

    def _roll_back(self, session: Session, row: DeployRow, reason: str, now: datetime) -> None:
        service.transition(session, row, "rolling_back", actor=ACTOR, now=now, reason=reason)
        row.step_started_at = None
        self._page(session, row, f"Deploy {row.id} of {row.service} {row.to_version} rolled back: {reason}")

    def _page(self, session: Session, row: DeployRow, reason: str) -> None:
        severity = self.settings.rollback.incident_severity
        incident = self.platform.open_incident(session, row, reason, severity)
        if incident is not None:
            row.incident_id = incident

    # --- claims ---------------------------------------------------------------------------

    @staticmethod
    def _key(row: DeployRow) -> str:
        if row.state == "rolling_back":
            return f"deploy:{row.id}:rollback:{service.rollback_index(row)}"
        return f"deploy:{row.id}:step:{row.step}"

    def _claim(self, session: Session, key: str, now: datetime) -> claims.Claim | None:
        held = self._held.get(key)
        if held is not None and claims.renew(session, held, now):
            return held
        claim = claims.take(session, key, holder=self.holder, now=now, lease=LEASE)
        if claim is not None:
            self._held[key] = claim
        else:
            self._held.pop(key, None)
        return claim

    def _release_claim(self, session: Session, key: str, now: datetime) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            claims.release(session, held, now)

    # --- the steps ------------------------------------------------------------------------

    def _do(self, step: dict[str, Any], deploy: _Snapshot, now: datetime) -> Outcome:
        kind = step["kind"]
        platform, svc, new = self.platform, deploy.service, deploy.to_version
        if kind == "precheck":
            blocking = platform.blocking(svc)
            if blocking:
                return Outcome(pause=f"pre-checks failed: {'; '.join(blocking)}")
            return Outcome(done=True)
        if kind == "start":
            names = platform.start(svc, new, int(step["instances"]))
            return Outcome(done=True, details={"instances": names})
        if kind == "smoke":
            failures = platform.smoke(svc, new)
            if failures:
                return Outcome(rollback=f"smoke tests failed: {'; '.join(failures)}")
            return Outcome(done=True)
        if kind == "shift":
            percent = float(step["percent"])
            problem = platform.extra_healthy(svc, new)
            if problem:
                return Outcome(rollback=problem)
            split = platform.shift(svc, new, percent)
            return Outcome(done=True, details={"percent": percent, "split": split})
        if kind == "analyse":
            return self._analyse(step, deploy, now)
        if kind == "hold":
            problem = platform.extra_healthy(svc, new) or self._p0(deploy)
            if problem:
                return Outcome(rollback=problem)
            started = deploy.step_started_at or now
            return Outcome(done=(now - started).total_seconds() >= float(step["seconds"]))
        if kind == "replace":
            index = int(step["instance"])
            if platform.main_versions(svc).get(index) != new:
                if deploy.proxied:
                    platform.shift(svc, new, 0.0, drained=[index])
                platform.replace(svc, index, new)
                if deploy.proxied:
                    platform.shift(svc, new, 0.0)
            return Outcome(done=True, details={"instance": index})
        if kind == "settle":
            for index, version in sorted(platform.main_versions(svc).items()):
                if version != new:
                    if deploy.proxied:  # its requests go to the new instances, or, with none, to its peers
                        platform.shift(svc, new, 100.0, drained=[index])
                    platform.replace(svc, index, new)
            if deploy.proxied:
                platform.shift(svc, new, 0.0)
            platform.stop_extra(svc, new)
            return Outcome(done=True, details={"percent": 0.0})
        if kind == "release":
            platform.set_release(svc, new)
            return Outcome(done=True, details={"release": new})
        if kind == "postcheck":
            problem = platform.healthy(svc)
            if problem is None:
                return Outcome(done=True)
            started = deploy.step_started_at or now
            if (now - started).total_seconds() >= self.settings.health_timeout:
                return Outcome(rollback=f"post-checks failed: {problem}")
            return Outcome()
        if kind == "restore":
            return self._restore(deploy)
        raise StepFailed(f"unknown step {kind!r}")

    def _restore(self, deploy: _Snapshot) -> Outcome:
        platform, svc, old, new = self.platform, deploy.service, deploy.from_version, deploy.to_version
        irreversible = new in self.settings.for_service(svc).irreversible
        versions = platform.main_versions(svc)
        if deploy.proxied:
            platform.shift(svc, new, 0.0, drained=[i for i, v in versions.items() if v != old]
                           if any(v == old for v in versions.values()) else ())
        if irreversible:
            platform.stop_extra(svc, new)
            return Outcome(pause=f"{new} ships a schema change marked irreversible: requests are back on "
                           f"the instances running {old}, the schema change stays; a person decides how "
                           "to go on", rollback=deploy.reason, details={"percent": 0.0})
        settled = not any(v == old for v in versions.values())
        for index, version in sorted(versions.items()):
            if version != old:
                if deploy.proxied and settled:  # every own instance serves: drained one at a time
                    platform.shift(svc, new, 0.0, drained=[index])
                platform.replace(svc, index, old)
        if deploy.proxied:
            platform.shift(svc, new, 0.0)
        platform.stop_extra(svc, new)
        platform.set_release(svc, old)
        return Outcome(done=True, details={"percent": 0.0, "release": old})

    def _p0(self, deploy: _Snapshot) -> str | None:
        since = deploy.created_at
        alerts = self.platform.p0_alerts(deploy.service, since)
        return f"P0 alert during the deploy: {', '.join(alerts)}" if alerts else None

    def _analyse(self, step: dict[str, Any], deploy: _Snapshot, now: datetime) -> Outcome:
        canary = self.settings.canary
        started = deploy.step_started_at or now
        problem = self.platform.extra_healthy(deploy.service, deploy.to_version) or self._p0(deploy)
        if problem:
            return Outcome(rollback=problem)
        found = self.platform.intervals(deploy.service, [deploy.from_version, deploy.to_version],
                                        started, now, canary.interval)
        due = started + timedelta(seconds=canary.step_duration * (1 + deploy.extensions))
        final = now >= due
        verdict = analyse(found.get(deploy.from_version, []), found.get(deploy.to_version, []),
                          self.settings.analysis, final=final)
        record = _verdict_record(verdict, step, deploy, now)
        if verdict.outcome == "fail" and (verdict.decisive or final):
            return Outcome(rollback=f"analysis at {step['percent']:g} %: {_failed(verdict)}", verdict=record)
        if verdict.outcome == "pass" and (verdict.decisive or final):
            if deploy.auto_promote if deploy.auto_promote is not None else canary.auto_promote:
                return Outcome(done=True, verdict=record)
            return Outcome(pause=f"analysis at {step['percent']:g} % passed; waiting for "
                           f"`opsplane deploy promote {deploy.id}`", verdict=record)
        if final:  # inconclusive at the step's end: extend, or a person decides
            if canary.inconclusive == "extend" and deploy.extensions < canary.max_extensions:
                return Outcome(verdict=record, details={"extend": True})
            return Outcome(pause=f"analysis at {step['percent']:g} % is inconclusive: {verdict.reason}",
                           verdict=record)
        return Outcome()


def _failed(verdict: Verdict) -> str:
    """The failing metrics and both releases' figures, short enough for an incident's title."""
    from opsplane.units import Unit, format_value

    names = ", ".join(m.name for m in verdict.metrics if m.outcome == "fail")
    return (f"{names} failed (error ratio {format_value(verdict.stable_error_ratio, Unit.RATIO)} stable vs "
            f"{format_value(verdict.canary_error_ratio, Unit.RATIO)} new, p95 "
            f"{format_value(verdict.stable_p95, Unit.SECONDS)} vs "
            f"{format_value(verdict.canary_p95, Unit.SECONDS)})")


def _verdict_record(verdict: Verdict, step: dict[str, Any], deploy: _Snapshot,
                    now: datetime) -> dict[str, Any]:
    return {"step": deploy.step, "percent": step["percent"], "at": now.isoformat(),
            "stable": deploy.from_version, "canary": deploy.to_version, "explanation": verdict.explain(),
            **verdict.as_dict()}


@dataclass(frozen=True)
class _Snapshot:
    """What a step needs of its deploy, read once under the claim."""

    id: int
    service: str
    from_version: str
    to_version: str
    step: int
    step_started_at: datetime | None
    extensions: int
    created_at: datetime
    proxied: bool
    auto_promote: bool | None
    reason: str

    @classmethod
    def of(cls, row: DeployRow) -> _Snapshot:
        return cls(row.id, row.service, row.from_version, row.to_version, row.step, row.step_started_at,
                   row.extensions, row.created_at, bool(row.params.get("proxied")),
                   row.params.get("auto_promote"), row.reason)
