"""What a `report` step reads: opsplane's own answers by name, each judged ok, warned or failed.

A checklist asks things no single check or query answers: how many incidents are open, which
alerts fire, where the backups stand, how full the host's disk is, who is on call. Each read
here answers one of them from the store, the inventory or the host, and says in a line or a
few what it found; the judgement is the read's own (a P0 or P1 incident open fails, a P2 or P3
warns). Reads never change anything: a report step is safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from opsplane.clock import Clock
from opsplane.config.models import Inventory
from opsplane.store import Store

URGENT = ("P0", "P1")  # severities whose open incident or firing alert fails an item
HANDOFF_WITHIN = timedelta(hours=24)  # a handoff note older than this is none for today's shift


@dataclass(frozen=True)
class ReadContext:
    """What a read may look at."""

    inventory: Inventory
    base_dir: Path
    store: Store
    clock: Clock
    environ: Mapping[str, str]


@dataclass(frozen=True)
class Reading:
    """A read's judgement (ok, warned, failed) and what it found, for a person."""

    outcome: str
    said: str


def read(step: Any, ctx: ReadContext) -> Reading:
    """The answer of the read `step.read` names."""
    return _READS[step.read](step, ctx)


def _worst(outcomes: list[str]) -> str:
    for outcome in ("failed", "warned"):
        if outcome in outcomes:
            return outcome
    return "ok"


def _health(step: Any, ctx: ReadContext) -> Reading:
    """Every check of the inventory probed once now, as `opsplane health` probes them."""
    from opsplane.health.flows import probe_all
    from opsplane.health.models import State
    from opsplane.health.targets import check_targets

    targets = check_targets(ctx.inventory)
    if not targets:
        return Reading("ok", "the inventory has no checks")
    results = asyncio.run(probe_all(targets, environ=ctx.environ))
    bad = [(t.id, r) for t in targets if (r := results[t.id]).state is not State.OK]
    lines = [f"{len(targets) - len(bad)} of {len(targets)} checks ok"]
    lines += [f"{check}: {r.state.value} {r.reason}" for check, r in bad]
    outcome = _worst(["failed" if r.state is State.CRITICAL else "warned" for _, r in bad])
    return Reading(outcome, "\n".join(lines))


def _incidents(step: Any, ctx: ReadContext) -> Reading:
    from opsplane.incidents import service

    with ctx.store.session() as session:
        rows = service.get_all(session, open_only=True)
        found = [(row.id, row.severity, row.status, row.service, row.title) for row in rows]
    if not found:
        return Reading("ok", "0 incidents open")
    lines = [f"{len(found)} incident{'s' if len(found) != 1 else ''} open"]
    lines += [f"INC-{i} {sev} {status} {svc}: {title}" for i, sev, status, svc, title in found]
    return Reading("failed" if any(sev in URGENT for _, sev, *_ in found) else "warned", "\n".join(lines))


def _alerts(step: Any, ctx: ReadContext) -> Reading:
    from opsplane.alerts import service
    from opsplane.alerts.state import AlertState

    with ctx.store.session() as session:
        firing = [a for a in service.get_all(session) if a.state is AlertState.FIRING]
    if not firing:
        return Reading("ok", "0 alerts firing")
    lines = [f"{len(firing)} alert{'s' if len(firing) != 1 else ''} firing"]
    lines += [f"{a.labels.get('alertname', a.rule)} {a.labels.get('severity', '')} "
              f"{a.labels.get('service', '')}".rstrip() for a in firing[:20]]
    urgent = any(a.labels.get("severity") in URGENT for a in firing)
    return Reading("failed" if urgent else "warned", "\n".join(lines))


def _statuses(ctx: ReadContext) -> list[Any]:
    from opsplane.backup.status import statuses

    with ctx.store.session() as session:
        return statuses(session, ctx.inventory, now=ctx.clock.now())


def _backup(step: Any, ctx: ReadContext) -> Reading:
    """Each policy as `opsplane backup status` judges it: a stale or failing one fails, an
    overdue verification or drill warns."""
    if not ctx.inventory.backup.policies:
        return Reading("ok", "no backup policies in the inventory")
    lines, outcomes = [], []
    for status in _statuses(ctx):
        problems = status.problems
        serious = bool(status.failures_in_a_row or status.compliance.stale or status.compliance.violations
                       or status.verify_failed or status.archive_broken)
        if problems:  # an overdue verification or drill alone only warns
            outcomes.append("failed" if serious else "warned")
            lines.append(f"{status.policy.name}: " + "; ".join(problems))
        else:
            last = status.last.finished_at or status.last.started_at if status.last else None
            lines.append(f"{status.policy.name}: ok" + (f", last backup {last:%Y-%m-%d %H:%M} UTC"
                                                        if last else ""))
    return Reading(_worst(outcomes), "\n".join(lines))


def _archive(step: Any, ctx: ReadContext) -> Reading:
    """Continuous WAL archiving of the physical policies, as the backup worker last found it."""
    found = [s for s in _statuses(ctx) if s.policy.physical] if ctx.inventory.backup.policies else []
    if not found:
        return Reading("ok", "no policy archives WAL")
    lines, broken = [], False
    for status in found:
        if status.archive_broken:
            broken = True
            lines += [f"{status.policy.name} -> {repo}: missing WAL since {since:%Y-%m-%d %H:%M} UTC: {why}"
                      for repo, (since, why) in status.archive_broken.items()]
        else:
            lines.append(f"{status.policy.name}: archive complete")
    return Reading("failed" if broken else "ok", "\n".join(lines))


def _percent(used: float, step: Any, warn: float, fail: float, what: str) -> Reading:
    fail_at = step.fail_at if step.fail_at is not None else fail
    warn_at = step.warn_at if step.warn_at is not None else warn
    outcome = "failed" if used >= fail_at else "warned" if used >= warn_at else "ok"
    return Reading(outcome, f"{what} {used:.0f}% used (warn at {warn_at:g}%, fail at {fail_at:g}%)")


def _disk(step: Any, ctx: ReadContext) -> Reading:
    import psutil

    path = Path(step.path)
    path = path if path.is_absolute() else ctx.base_dir / path
    usage = psutil.disk_usage(str(path))
    free = usage.free / 2**30
    return _percent(usage.percent, step, 80.0, 90.0, f"disk of {path}: {free:.1f} GiB free,")


def _memory(step: Any, ctx: ReadContext) -> Reading:
    import psutil

    memory = psutil.virtual_memory()
    return _percent(memory.percent, step, 85.0, 95.0,
                    f"memory: {memory.available / 2**30:.1f} GiB available,")


def _tls(step: Any, ctx: ReadContext) -> Reading:
    """Every tls check probed now: days left on each certificate, judged by its own thresholds."""
    from opsplane.health.flows import probe_all
    from opsplane.health.models import State
    from opsplane.health.targets import check_targets

    targets = [t for t in check_targets(ctx.inventory) if getattr(t.check, "type", "") == "tls"]
    if not targets:
        return Reading("ok", "the inventory has no tls checks")
    results = asyncio.run(probe_all(targets, environ=ctx.environ))
    lines, outcomes = [], []
    for target in targets:
        result = results[target.id]
        days = result.metrics.get("days_left")
        lines.append(f"{target.id}: {days} days left" if days is not None else
                     f"{target.id}: {result.state.value} {result.reason}")
        outcomes.append({State.OK: "ok", State.CRITICAL: "failed"}.get(result.state, "warned"))
    return Reading(_worst(outcomes), "\n".join(lines))


def _handoff(step: Any, ctx: ReadContext) -> Reading:
    """Who is on call now on each schedule, and the last handoff note: a schedule without a
    note in the last day warns."""
    from opsplane.oncall import service

    settings = ctx.inventory.oncall
    if not settings.schedules:
        return Reading("ok", "no on-call schedules in the inventory")
    now = ctx.clock.now()
    lines, outcomes = [], []
    with ctx.store.session() as session:
        roster = service.get_roster(session, settings=settings)
        for name, schedule in settings.schedules.items():
            people = ", ".join(settings.display_name(roster.on_call(name, layer, now).person)
                               for layer in schedule.layers)
            notes = service.get_handoffs(session, schedule=name, limit=1)
            note = notes[0] if notes else None
            if note is not None and now - note.at <= HANDOFF_WITHIN:
                lines.append(f"{name}: {people} on call; handoff {note.at:%Y-%m-%d %H:%M} UTC by "
                             f"{note.actor}: {note.note}")
                outcomes.append("ok")
            else:
                lines.append(f"{name}: {people} on call; no handoff note in the last 24 h "
                             f"(opsplane oncall handoff)")
                outcomes.append("warned")
    return Reading(_worst(outcomes), "\n".join(lines))


LOG_ERRORS_WARN = 10.0  # error lines of one service in the window from which log.errors warns


def _log_errors(step: Any, ctx: ReadContext) -> Reading:
    """Error lines per service in its logs over `step.window` (24 h), as `opsplane logs --errors`
    counts them: a service with `warn_at` (10) or more warns, with `fail_at` or more fails."""
    from opsplane.drivers.runtime.logfiles import read_logs
    from opsplane.runtime.logscan import count_errors
    from opsplane.runtime.retention import log_dir
    from opsplane.runtime.selection import runnable

    services = list(runnable(ctx.inventory))
    if not services:
        return Reading("ok", "opsplane's runtime runs no service: no logs to count")
    since = ctx.clock.now() - timedelta(seconds=step.window)
    where = log_dir(ctx.inventory, ctx.base_dir)
    results = [count_errors(name, read_logs(where, name, since=since)) for name in services]
    warn_at = step.warn_at if step.warn_at is not None else LOG_ERRORS_WARN
    total = sum(r.errors for r in results)
    outcomes, lines = [], [f"{total} error lines in the last {step.window / 3600:g} h"]
    for found in sorted(results, key=lambda r: (-r.errors, r.service)):
        outcome = "failed" if step.fail_at is not None and found.errors >= step.fail_at else \
            "warned" if found.errors >= warn_at else "ok"
        outcomes.append(outcome)
        top = found.top(1)
        lines.append(f"{found.service}: {found.errors}" + (f" (most: {top[0].count}x {top[0].message})"
                                                           if top else ""))
    return Reading(_worst(outcomes), "\n".join(lines))


_READS: dict[str, Callable[[Any, ReadContext], Reading]] = {
    "health.checks": _health,
    "incidents.open": _incidents,
    "alerts.firing": _alerts,
    "backup.status": _backup,
    "backup.archive": _archive,
    "host.disk": _disk,
    "host.memory": _memory,
    "tls.expiry": _tls,
    "oncall.handoff": _handoff,
    "log.errors": _log_errors,
}

__all__ = ["ReadContext", "Reading", "read"]
