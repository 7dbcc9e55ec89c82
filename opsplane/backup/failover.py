"""`opsplane failover DATABASE`: promote the database's streaming standby, fence the old
primary, point the clients' PgBouncer at the new one, and measure each step.

    checks ─▶ PAUSE ─▶ fence ─▶ catch-up ─▶ promote ─▶ repoint + RELOAD ─▶ RESUME

The checks change nothing; when they find a reason not to start (the standby does not answer,
is not in recovery, cannot catch up; PgBouncer does not answer) the failover is refused with
FailoverRefused. Then PgBouncer is paused, so clients wait instead of failing; the old primary is
fenced and the standby waits for the last of its WAL, so no commit a client saw is lost; the
standby is promoted and PgBouncer resumed towards it. A step that fails stops the failover: the
fence is lifted again if nothing was promoted yet, PgBouncer is always resumed, and the failure
is recorded with its step. Every failover that started is a `restores` row of purpose
`failover`, its report holding the steps, their seconds and the lag at the start."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from opsplane.backup import service
from opsplane.backup.failover_plan import FailoverPlan, plan
from opsplane.clock import Clock
from opsplane.drivers.backup import standby as pg
from opsplane.drivers.pgbouncer import PgBouncer, PgBouncerError, database_entry
from opsplane.errors import OpsplaneError, UsageError
from opsplane.events import service as events

if TYPE_CHECKING:
    from opsplane.config.models import Inventory
    from opsplane.store import Store

PURPOSE = "failover"
_PAUSE_LIMIT = 5.0  # how long PAUSE may wait for transactions in flight
_STOP_LIMIT = 30.0
_CHECK_TIMEOUT = 3.0


class FailoverRefused(UsageError):
    """The checks found a reason not to start; nothing was changed. `report` holds the plan and
    what the checks found."""

    def __init__(self, message: str, report: FailoverReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class StepResult:
    """One step of a failover: whether it did its part, how long it took, what it did or why not."""

    name: str
    ok: bool
    seconds: float
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "ok": self.ok, "seconds": round(self.seconds, 3), "detail": self.detail}


@dataclass(frozen=True)
class FailoverReport:
    """What a failover (or its dry run) found and did, as the CLI prints it and the store keeps it."""

    database: str
    ok: bool
    dry_run: bool
    old_primary: str
    new_primary: str | None
    plan: tuple[str, ...]
    checks: Mapping[str, Any]
    warnings: tuple[str, ...]
    refusals: tuple[str, ...] = ()
    steps: tuple[StepResult, ...] = ()
    total_seconds: float = 0.0
    target_seconds: float = 0.0
    failed_step: str | None = None
    error: str | None = None
    inventory_change: tuple[str, ...] = ()
    record_id: int | None = None

    @property
    def met_target(self) -> bool:
        return self.ok and self.total_seconds <= self.target_seconds

    def as_dict(self) -> dict[str, Any]:
        return {"database": self.database, "ok": self.ok, "dry_run": self.dry_run,
                "old_primary": self.old_primary, "new_primary": self.new_primary,
                "total_seconds": round(self.total_seconds, 3), "target_seconds": self.target_seconds,
                "met_target": self.met_target, "failed_step": self.failed_step, "error": self.error,
                "steps": [step.as_dict() for step in self.steps], "plan": list(self.plan),
                "checks": dict(self.checks), "warnings": list(self.warnings), "refusals": list(self.refusals),
                "inventory_change": list(self.inventory_change), "record": self.record_id}


@dataclass
class Checks:
    """What the checks found: each server's state, the lag, PgBouncer's entry, and the reasons
    not to start (`refusals`) or to start with care (`warnings`)."""

    primary: pg.ServerState
    standby: pg.ServerState
    lag: dict[str, Any]
    pgbouncer: dict[str, Any] | None
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"old_primary": self.primary.as_dict(), "standby": self.standby.as_dict(), "lag": self.lag,
                "pgbouncer": self.pgbouncer}


def check(plan: FailoverPlan, *, timeout: float = _CHECK_TIMEOUT) -> Checks:
    """Look at the standby, the old primary and PgBouncer; change nothing."""
    name, settings = plan.database, plan.settings
    primary, standby = pg.look(plan.primary, timeout=timeout), pg.look(plan.standby, timeout=timeout)
    found = Checks(primary, standby, pg.lag(primary, standby), None)
    refuse, warn = found.refusals.append, found.warnings.append
    if not standby.reachable:
        refuse(f"{standby.error}: the standby must answer to be promoted; start it, or correct "
               f"backup.failover.{name}.standby")
    elif not standby.in_recovery:
        refuse(f"the standby {standby.address} is not in recovery: it is a primary already (an earlier "
               f"failover?); correct databases.{name} and backup.failover.{name}.standby")
    if primary.reachable and primary.in_recovery:
        refuse(f"the old primary {primary.address} is in recovery itself: databases.{name} does not name the "
               f"primary; correct it")
    elif primary.reachable and standby.reachable and standby.in_recovery and not standby.streaming:
        refuse(f"the standby {standby.address} is not streaming WAL now, so it could not catch up with the "
               f"primary {primary.address}; check its primary_conninfo and the primary's log")
    elif not primary.reachable:
        warn(f"{primary.error}: it cannot be fenced over the connection"
             + (", only by pg_ctl here if it runs on this host" if settings.fence.how == "stop" else "")
             + "; make sure it cannot come back as a primary. The standby is promoted with the WAL it has "
             "received; how far behind that was is unknown")
    for what, directory in (("fence stop", settings.fence.data_dir if settings.fence.how == "stop" else None),
                            ("promote pg_ctl", settings.standby.data_dir
                             if settings.standby.promote == "pg_ctl" else None)):
        if directory is not None and not Path(directory, "PG_VERSION").is_file():
            refuse(f"{what}: {directory} is not a PostgreSQL data directory on this host")
    if plan.pgbouncer is not None:
        found.pgbouncer = _check_pgbouncer(plan, found, timeout)
    return found


def lag_words(lag: Mapping[str, Any]) -> str:
    """How far the standby was behind, for a person."""
    if lag.get("replay_bytes") is None:
        return "lag unknown (the old primary did not say where its WAL is)"
    seconds = lag.get("seconds")
    return (f"{lag['receive_bytes']} bytes of WAL not received, {lag['replay_bytes']} not replayed"
            + (f", {seconds:.1f} s behind" if seconds is not None else ""))


def _check_pgbouncer(plan: FailoverPlan, found: Checks, timeout: float) -> dict[str, Any]:
    target = plan.pgbouncer
    assert target is not None
    seen: dict[str, Any] = {"address": target.address, "database": target.entry}
    try:
        entry = database_entry(Path(target.config_file).read_text(), target.entry)
    except OSError as exc:
        found.refusals.append(f"cannot read PgBouncer's ini file {target.config_file}: {exc.strerror}")
        entry = None
    else:
        if entry is None:
            found.refusals.append(f"{target.config_file} has no [databases] entry {target.entry!r}: name "
                                  f"the entry the clients use in "
                                  f"backup.failover.{plan.database}.pgbouncer.database")
    try:
        with _console(plan, timeout) as console:
            row = console.database(target.entry)
    except PgBouncerError as exc:
        found.refusals.append(f"{exc}; PgBouncer must answer to pause and repoint the clients")
        return seen
    seen.update(points_at=f"{row.get('host')}:{row.get('port')}", paused=bool(row.get("paused")))
    if seen["points_at"] != plan.primary.address:
        found.warnings.append(f"PgBouncer points {target.entry} at {seen['points_at']}, not at the primary "
                              f"{plan.primary.address}")
    if entry is not None:
        seen["file_points_at"] = f"{entry.get('host')}:{entry.get('port', '5432')}"
    return seen


def failover(store: Store | None, inventory: Inventory, database: str, *, clock: Clock, actor: str,
             environ: Mapping[str, str], dry_run: bool = False) -> FailoverReport:
    """Fail `database` over to its standby, or with `dry_run` only check and say what would be done.

    FailoverRefused (nothing changed) when the checks find a reason not to start; otherwise the
    report says whether it succeeded and, if not, at which step and why. `store` may be None for a
    dry run, which records nothing."""
    started = clock.monotonic()
    chosen = plan(inventory, database, environ=environ)
    found = check(chosen)
    base = FailoverReport(database=database, ok=not found.refusals, dry_run=dry_run,
                          old_primary=chosen.primary.address, new_primary=None, plan=tuple(chosen.steps()),
                          checks=found.as_dict(), warnings=tuple(found.warnings),
                          refusals=tuple(found.refusals), target_seconds=chosen.settings.target)
    if found.refusals:
        raise FailoverRefused(f"failover of {database} refused, nothing was changed: "
                              + "; ".join(found.refusals), base)
    if dry_run:
        return base
    if store is None:
        raise UsageError("a failover is recorded in the store: open it first")
    with store.session() as session:
        record = service.begin_restore(session, purpose=PURPOSE, policy=database, backup_id=None,
                                       repository=None, target=chosen.standby.address,
                                       recovery_target=None, actor=actor, now=clock.now())
        record_id = record.id
    runner = _Runner(chosen, clock)
    runner.steps.insert(0, StepResult("checks", True, clock.monotonic() - started,
                                      f"standby {found.standby.address} in recovery; {lag_words(found.lag)}"))
    runner.run()
    total = clock.monotonic() - started
    report = FailoverReport(
        database=database, ok=runner.failed is None, dry_run=False, old_primary=chosen.primary.address,
        new_primary=chosen.standby.address if runner.promoted else None, plan=base.plan, checks=base.checks,
        warnings=tuple(found.warnings + runner.warnings), steps=tuple(runner.steps), total_seconds=total,
        target_seconds=chosen.settings.target, failed_step=runner.failed,
        error=runner.error, inventory_change=tuple(chosen.inventory_change()) if runner.promoted else (),
        record_id=record_id)
    _record(store, report, found, actor=actor, clock=clock)
    return report


class _Runner:
    """The steps after the checks, each timed; the first that fails stops the rest and undoes
    what can be undone."""

    def __init__(self, plan: FailoverPlan, clock: Clock) -> None:
        self.plan, self.clock = plan, clock
        self.steps: list[StepResult] = []
        self.warnings: list[str] = []
        self.failed: str | None = None
        self.error: str | None = None
        self.promoted = False
        self.paused = False
        self.console: PgBouncer | None = None
        self.fence_lsn: str | None = None

    def run(self) -> None:
        plan = self.plan
        try:
            if plan.pgbouncer is not None:
                self.console = _console(plan, _PAUSE_LIMIT)
                self._step("pause", self._pause)
            self._step("fence", self._fence)
            self._step("catch-up", self._catch_up)
            self._step("promote", self._promote)
            if self.console is not None:
                self._step("repoint", self._repoint)
                self._step("resume", self._resume)
        except _StepFailed:
            self._undo()
        finally:
            if self.console is not None:
                self.console.close()

    def _step(self, name: str, action: Callable[[], str]) -> None:
        started = self.clock.monotonic()
        try:
            detail = action()
        except (OpsplaneError, psycopg.Error, OSError) as exc:
            self.steps.append(StepResult(name, False, self.clock.monotonic() - started, str(exc)))
            self.failed, self.error = name, f"{name}: {exc}"
            raise _StepFailed from None
        self.steps.append(StepResult(name, True, self.clock.monotonic() - started, detail))

    def _pause(self) -> str:
        assert self.console is not None and self.plan.pgbouncer is not None
        self.paused = True  # a PAUSE that gave up may have left it pausing: always resume
        self.console.pause(self.plan.pgbouncer.entry, timeout=_PAUSE_LIMIT)
        return f"PAUSE {self.plan.pgbouncer.entry} in {self.plan.pgbouncer.address}"

    def _fence(self) -> str:
        fence, primary = self.plan.settings.fence, self.plan.primary
        if fence.how == "stop":
            assert fence.data_dir is not None
            try:
                self.fence_lsn = pg.flush_lsn(primary)
            except pg.StandbyError as exc:
                self.warnings.append(f"the old primary's last WAL position was not read: {exc}")
            was_running = pg.fence_stop(fence.data_dir, os_user=fence.os_user, timeout=_STOP_LIMIT)
            return (f"stopped the old primary in {fence.data_dir}" if was_running
                    else f"the old primary in {fence.data_dir} was not running")
        if not pg.look(primary).reachable:
            return f"not fenced: the old primary {primary.address} does not answer"
        self.fence_lsn = pg.fence_read_only(primary)
        return f"the old primary {primary.address} is read-only, its sessions ended, at WAL {self.fence_lsn}"

    def _catch_up(self) -> str:
        if self.fence_lsn is None:
            return "skipped: the old primary's last WAL position is unknown"
        reached = pg.wait_received(self.plan.standby, self.fence_lsn, timeout=self.plan.settings.catch_up)
        return f"the standby received the WAL up to {reached} (the old primary's last: {self.fence_lsn})"

    def _promote(self) -> str:
        standby, settings = self.plan.standby, self.plan.settings.standby
        limit = max(5.0, self.plan.settings.target)
        if settings.promote == "pg_ctl":
            assert settings.data_dir is not None
            pg.promote_with_pg_ctl(standby, settings.data_dir, os_user=settings.os_user, timeout=limit)
        else:
            pg.promote(standby, timeout=limit)
        self.promoted = True
        return f"{standby.address} is the primary (out of recovery)"

    def _repoint(self) -> str:
        assert self.console is not None and self.plan.pgbouncer is not None
        target, standby = self.plan.pgbouncer, self.plan.standby
        done = self.console.repoint(target.config_file, target.entry, standby.host, standby.port)
        return f"{target.entry} pointed at {standby.address} (was {done.old_host}:{done.old_port}), RELOAD"

    def _resume(self) -> str:
        assert self.console is not None and self.plan.pgbouncer is not None
        self.console.resume(self.plan.pgbouncer.entry)
        self.paused = False
        return f"RESUME {self.plan.pgbouncer.entry}"

    def _undo(self) -> None:
        """After a failed step: lift a read-only fence if nothing was promoted (the clients go on
        with the old primary), and resume PgBouncer so no client is left waiting."""
        fence, primary = self.plan.settings.fence, self.plan.primary
        fenced = self.failed in ("fence", "catch-up")  # a failed fence may have gone half-way

        def unfence() -> str:
            pg.unfence_read_only(primary)
            return f"the old primary {primary.address} takes writes again"

        if fenced and fence.how == "read-only":
            self._undo_step("unfence", unfence)
        elif fenced:
            self.warnings.append(f"the old primary was stopped and nothing was promoted: start it again "
                                 f"(pg_ctl start -D {fence.data_dir}) or promote the standby by hand")
        if self.failed == "promote":
            self.warnings.append(f"whether {self.plan.standby.address} was promoted is unknown: look at "
                                 f"pg_is_in_recovery() there before anything else")
        if self.paused and self.plan.pgbouncer is not None:
            entry = self.plan.pgbouncer.entry

            def resume() -> str:
                console = _console(self.plan, _PAUSE_LIMIT)
                try:
                    console.resume(entry)
                finally:
                    console.close()
                self.paused = False
                return f"RESUME {entry} after the failure, so no client is left waiting"

            self._undo_step("resume", resume)
        if self.promoted and self.plan.pgbouncer is not None and self.failed == "repoint":
            bouncer = self.plan.pgbouncer
            self.warnings.append(f"PgBouncer still points {bouncer.entry} at the old primary: set host and "
                                 f"port to {self.plan.standby.address} in {bouncer.config_file} and RELOAD")

    def _undo_step(self, name: str, action: Callable[[], str]) -> None:
        started = self.clock.monotonic()
        try:
            detail, ok = action(), True
        except (OpsplaneError, psycopg.Error, OSError) as exc:
            detail, ok = f"could not: {exc}", False
            self.warnings.append(f"{name} after the failure did not work: {exc}")
        self.steps.append(StepResult(name, ok, self.clock.monotonic() - started, detail))


class _StepFailed(Exception):
    pass


def _console(plan: FailoverPlan, timeout: float) -> PgBouncer:
    target = plan.pgbouncer
    assert target is not None
    return PgBouncer(target.host, target.port, user=target.admin_user, password=target.password,
                     timeout=timeout)


def _record(store: Store, report: FailoverReport, found: Checks, *, actor: str, clock: Clock) -> None:
    """Finish the failover's `restores` row with its report; a promotion is also an event of the
    database, for its incidents' timelines."""
    kept = {"database": report.database, "old_primary": report.old_primary, "new_primary": report.new_primary,
            "total_seconds": round(report.total_seconds, 3), "target_seconds": report.target_seconds,
            "met_target": report.met_target, "failed_step": report.failed_step,
            "lag_at_start": found.lag, "steps": [step.as_dict() for step in report.steps],
            "warnings": list(report.warnings), "inventory_change": list(report.inventory_change)}
    with store.session() as session:
        row = service.get_restore(session, report.record_id or 0)
        service.finish_restore(session, row, ok=report.ok, report=kept, error=report.error, actor=actor,
                               now=clock.now())
        if report.new_primary is not None:
            events.record(session, kind="database.promoted", actor=actor, service=report.database,
                          target=f"database {report.database}", outcome="ok" if report.ok else "failed",
                          details={"new_primary": report.new_primary, "old_primary": report.old_primary,
                                   "seconds": round(report.total_seconds, 3), "failover": report.record_id},
                          ts=clock.now())
