"""Database care that touches servers: the db report of one or every database, the pool
advice from several looks at each PgBouncer, and the actions (VACUUM, ANALYZE, ending sessions
idle in a transaction), each recorded as an event. The judging is in report.py and pools.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsplane.drivers import pgstats
from opsplane.drivers.pgbouncer import PgBouncer, PgBouncerError
from opsplane.errors import OpsplaneError, UsageError
from opsplane.maintenance import pools as pool_rules
from opsplane.maintenance import report as db_report
from opsplane.maintenance.targets import Bouncer, bouncers, server
from opsplane.maintenance.thresholds import Thresholds
from opsplane.reports.models import Finding, Report

POOLS_JOB = "db-pools"


def report_one(inv: Any, name: str, environ: Mapping[str, str], limits: Thresholds = Thresholds()) -> Report:
    """The db report of the inventory's database `name`; PgStatsError when it cannot be read."""
    target = server(inv, name, environ)
    collected = pgstats.collect(target, top=limits.top)
    return db_report.one_report(name, target.address, collected, limits)


def report_all(inv: Any, environ: Mapping[str, str], limits: Thresholds = Thresholds()) -> Report | None:
    """One report of every database of the inventory (None: it has none); a database that
    cannot be read is a critical finding, not the end of the report."""
    if not inv.databases:
        return None
    reports, failures = [], {}
    for name in sorted(inv.databases):
        try:
            reports.append(report_one(inv, name, environ, limits))
        except OpsplaneError as exc:
            failures[name] = str(exc)
    return db_report.combined(reports, failures)


# --- pools ------------------------------------------------------------------------------


@dataclass
class PoolLook:
    """What was seen of one PgBouncer: the samples, its limits, the advice."""

    bouncer: Bouncer
    sampled: pool_rules.Sampled
    limits: pool_rules.Limits
    advice: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        s = self.sampled
        return {
            "database": self.bouncer.database,
            "address": self.bouncer.address,
            "looks": s.looks,
            "seconds": round(s.seconds, 3),
            "pools": [
                {
                    "pool": name,
                    "pool_size": s.pool_size[name],
                    "peak_waiting": s.peak_waiting.get(name, 0),
                    "peak_active": s.peak_active.get(name, 0),
                    "peak_max_wait_s": round(s.peak_max_wait.get(name, 0.0), 3),
                    "avg_wait_ms": _ms(s.waits.get(s.database_of[name])),
                    "transactions_per_s": s.rates.get(s.database_of[name], 0.0),
                    "busy_servers": round(s.busy.get(s.database_of[name], 0.0), 3),
                }
                for name in sorted(s.pool_size)
            ],
            "peak_clients": s.peak_clients,
            "default_pool_size": self.limits.default_pool_size,
            "max_client_conn": self.limits.max_client_conn,
            "max_connections": self.limits.max_connections,
            "server_connections": self.limits.server_connections,
            "advice": self.advice,
        }


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 3) if seconds is not None else None


def look_at_pools(
    bouncer: Bouncer,
    pg: pgstats.Server | None,
    *,
    seconds: float = 10.0,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> PoolLook:
    """Look at `bouncer` every `interval` seconds for `seconds`, then advise; PgBouncerError
    when its admin console cannot be read. PostgreSQL's connections are read from `pg`."""
    sampled = pool_rules.Sampled()
    with PgBouncer(bouncer.host, bouncer.port, user=bouncer.admin_user, password=bouncer.password) as console:
        config = {str(r.get("key")): str(r.get("value")) for r in console.command("SHOW CONFIG")}
        started = monotonic()
        first = pool_rules.stats_totals(console.command("SHOW STATS"))
        last = first
        while True:
            databases = console.show_databases()
            sampled.add(pool_rules.pool_figures(console.show_pools(), databases, only=bouncer.pool_database))
            if monotonic() - started >= seconds:
                last = pool_rules.stats_totals(console.command("SHOW STATS"))
                break
            sleep(interval)
        sampled.finish(first, last, monotonic() - started)
    max_connections = reserved = used = None
    if pg is not None:
        try:
            with pgstats.connect(pg) as conn:
                row = pgstats.rows(
                    conn,
                    "SELECT current_setting('max_connections')::int AS m, "
                    "current_setting('superuser_reserved_connections')::int AS r, "
                    "(SELECT count(*) FROM pg_stat_activity "
                    " WHERE backend_type = 'client backend')::int AS used",
                )[0]
            max_connections, reserved, used = row["m"], row["r"], row["used"]
        except (OpsplaneError, IndexError):
            pass
    limits = pool_rules.Limits(
        default_pool_size=_int(config.get("default_pool_size")),
        max_client_conn=_int(config.get("max_client_conn")),
        max_connections=max_connections,
        reserved_connections=reserved or 3,
        server_connections=used,
    )
    advice, findings = pool_rules.advise(sampled, limits)
    return PoolLook(bouncer, sampled, limits, advice, findings)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def pools_report(
    inv: Any,
    environ: Mapping[str, str],
    *,
    only: str | None = None,
    seconds: float = 10.0,
    interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Report | None:
    """The pool advice for every PgBouncer the inventory's `pgbouncer` checks name (None: none)."""
    found = bouncers(inv, environ, only)
    if not found:
        return None
    looks, failures = [], {}
    for bouncer in found:
        try:
            pg = server(inv, bouncer.database, environ)
        except OpsplaneError:
            pg = None
        try:
            looks.append(look_at_pools(bouncer, pg, seconds=seconds, interval=interval, sleep=sleep))
        except PgBouncerError as exc:
            failures[bouncer.address] = str(exc)
    findings = [f for look in looks for f in look.findings]
    findings += [
        Finding("critical", address, f"could not be read: {why}") for address, why in failures.items()
    ]
    lines = ["# PgBouncer pools", ""]
    for look in looks:
        lines += [
            f"## {look.bouncer.address} (in front of {look.bouncer.database})",
            "",
            f"{look.sampled.looks} looks over {look.sampled.seconds:.0f} s; default_pool_size "
            f"{look.limits.default_pool_size}, max_client_conn {look.limits.max_client_conn}, "
            f"PostgreSQL max_connections {look.limits.max_connections or '-'}.",
            "",
        ]
        lines += [f"- {line}" for line in look.advice] + [""]
    lines += [f"- {address} could not be read: {why}" for address, why in failures.items()]
    raising = sum(1 for f in findings if "raise" in f.what)
    summary = (
        f"{len(looks)} PgBouncer(s): " + (f"{raising} pools to raise" if raising else "the pools fit")
        if looks
        else f"no PgBouncer could be read: {next(iter(failures.values()))}"
    )
    return Report(
        job=POOLS_JOB,
        subject=", ".join(b.address for b in found),
        summary=summary,
        findings=tuple(findings),
        body={"bouncers": [look.as_dict() for look in looks], "failures": failures},
        markdown="\n".join(lines).rstrip() + "\n",
        failed=not looks,
    )


# --- actions ----------------------------------------------------------------------------


def record(
    store: Any, *, kind: str, actor: str, database: str, outcome: str, details: dict[str, Any], clock: Any
) -> None:
    """One event of a care action, target `database:<name>`."""
    from opsplane.events.service import record as record_event

    with store.session() as session:
        record_event(
            session,
            kind=kind,
            actor=actor,
            target=f"database:{database}",
            outcome=outcome,
            service=database,
            ts=clock.now(),
            details=details,
        )


def run_maintenance(
    store: Any,
    clock: Any,
    target: pgstats.Server,
    *,
    command: str,
    table: str | None,
    analyze: bool,
    actor: str,
) -> str:
    """VACUUM or ANALYZE, recorded as `db.vacuum` / `db.analyze` whether it succeeded or not."""
    started = time.monotonic()
    kind = f"db.{command}"
    try:
        ran = (
            pgstats.vacuum(target, table, analyze=analyze)
            if command == "vacuum"
            else pgstats.analyze(target, table)
        )
    except UsageError:
        raise  # no such table: nothing was tried
    except OpsplaneError as exc:
        record(
            store,
            kind=kind,
            actor=actor,
            database=target.name,
            outcome="failed",
            clock=clock,
            details={"table": table, "analyze": analyze, "error": str(exc)},
        )
        raise
    record(
        store,
        kind=kind,
        actor=actor,
        database=target.name,
        outcome="ok",
        clock=clock,
        details={
            "table": table,
            "analyze": analyze,
            "statement": ran,
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return ran


def terminate_idle(
    store: Any,
    clock: Any,
    target: pgstats.Server,
    sessions: list[dict[str, Any]],
    *,
    older_than: float,
    actor: str,
) -> list[int]:
    """End `sessions` still idle in a transaction past `older_than`; recorded as
    `db.sessions_terminated` with each pid, user, application and idle time."""
    ended = pgstats.terminate(target, sessions, older_than)
    record(
        store,
        kind="db.sessions_terminated",
        actor=actor,
        database=target.name,
        outcome="ok" if len(ended) == len(sessions) else "partial",
        clock=clock,
        details={
            "older_than_s": older_than,
            "terminated": ended,
            "sessions": [
                {
                    "pid": s["pid"],
                    "user": s["user"],
                    "application": s["application"],
                    "idle_s": round(float(s["state_age"]), 1),
                }
                for s in sessions
            ],
        },
    )
    return ended
