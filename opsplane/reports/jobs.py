"""The jobs that write reports: their names, the manual's cadence, and running one.

A job is a function `run(env: JobEnv) -> Report | None` in its domain (None: the inventory gives
it nothing to look at, so nothing is stored). This is the one list of them; `serve`'s reports
worker runs each at its time (`worker.py`), `opsplane report run JOB` and the API run one now.
A job never raises for what it finds or cannot reach: `run_job` turns an unexpected error
into a failed report with the reason, so a schedule keeps going and the failure is on record.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsplane.errors import OpsplaneError, UsageError
from opsplane.reports.models import JobsSettings, Report

if TYPE_CHECKING:
    from opsplane.clock import Clock
    from opsplane.config.models import Inventory
    from opsplane.store import Store

Series = list[tuple[dict[str, str], float]]
RangeSeries = list[tuple[dict[str, str], list[tuple[float, float]]]]


@dataclass(frozen=True)
class Job:
    """A job: its name, `module:function`, the manual's cron (UTC) and what it looks at."""

    name: str
    entry: str
    cron: str
    about: str


# The manual's cadence (UTC): every day the security signals in the morning and log retention at
# night; every week the event log's chain and database care on Sunday night, the dependency
# review on Monday at 10:00 and the performance and capacity review on Wednesday; every month
# the pool tuning review, the audit trail's retention and the capacity update on the 1st; the
# access review each quarter.
JOBS: tuple[Job, ...] = (
    Job("security-signals", "opsplane.security.signals:run", "0 7 * * *",
        "failed sign-ins and the busiest clients of the last day, from the services' logs"),
    Job("log-retention", "opsplane.runtime.retention:retention_job", "30 3 * * *",
        "rotated log files older than their service's retention deleted; what was removed"),
    Job("audit-verify", "opsplane.events.jobs:audit_verify", "0 3 * * 0",
        "the event log's hash chain, walked from its checkpoint to its head"),
    Job("db-report", "opsplane.maintenance.jobs:db_report", "0 2 * * 0",
        "every database: vacuum and analyze age, dead tuples and bloat, indexes, slow queries, locks"),
    Job("deps-audit", "opsplane.dependencies.job:run", "0 10 * * 1",
        "known vulnerabilities of each service's packages, with fix times by severity"),
    Job("kpi-report", "opsplane.capacity.kpi:kpi_job", "0 10 * * 3",
        "search, API and database latency and the cache hit rate against their targets"),
    Job("capacity-check", "opsplane.capacity.report:capacity_job", "0 10 * * 3",
        "each resource's trend: when CPU, memory, disk, database pools and request rates reach "
        "their triggers"),
    Job("cache-report", "opsplane.cache.flows:cache_report_job", "0 10 * * 3",
        "Redis: memory of maxmemory, fragmentation, hit ratio, evictions, keyspace, big keys (a sample)"),
    Job("db-pools", "opsplane.maintenance.jobs:db_pools", "0 10 1 * *",
        "every PgBouncer of a pgbouncer check: waiting clients, pool use, advice on the pool's size"),
    Job("audit-retention", "opsplane.events.jobs:audit_retention", "0 4 1 * *",
        "events older than audit.at_hand moved to signed archives; archives older than audit.keep deleted"),
    Job("capacity-report", "opsplane.capacity.report:capacity_job", "0 10 1 * *",
        "the monthly capacity forecast with its scaling advice"),
    Job("access-review", "opsplane.security.access:run", "0 10 1 1,4,7,10 *",
        "API tokens unused for 90 days, admin tokens, dashboard sessions"),
)


def get(name: str) -> Job:
    for job in JOBS:
        if job.name == name:
            return job
    known = ", ".join(j.name for j in JOBS) or "none"
    raise UsageError(f"no job {name!r}; the jobs are: {known}")


def planned(settings: JobsSettings) -> dict[str, tuple[str, str]]:
    """Job name -> (cron expression, time zone) of every job `serve` runs."""
    from opsplane.checklists.models import ChecklistSchedule

    found: dict[str, tuple[str, str]] = {}
    for job in JOBS:
        given = settings.schedules.get(job.name, ChecklistSchedule())
        cron = given.expression(job.cron)
        if given.enabled and cron is not None:
            found[job.name] = (cron, given.timezone or settings.timezone)
    return found


def job_problems(inv: Inventory) -> list[tuple[tuple[str | int, ...], str]]:
    """Names under `jobs.schedules` that are no job, with their paths in the file."""
    if inv.jobs is None:
        return []
    known = ", ".join(j.name for j in JOBS) or "none"
    return [(("jobs", "schedules", name), f"no job {name!r}; the jobs are: {known}")
            for name in inv.jobs.schedules if name not in {j.name for j in JOBS}]


@dataclass
class JobEnv:
    """What a job is given: the inventory, the store, the clock, the environment (secrets), and
    PromQL over `serve`'s own samples (`samples`, inside `serve`) or the configured Prometheus
    or `serve`'s API (from the CLI, with OPSPLANE_TOKEN)."""

    inventory: Inventory
    base_dir: Path
    store: Store
    clock: Clock
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    samples: Callable[[], Any] | None = None
    actor: str = "opsplane"

    def query(self, expr: str, at: float | None = None) -> Series:
        """`expr` at `at` (default now): each series' labels and value."""
        at = self.clock.now().timestamp() if at is None else at
        if self.samples is not None and self.inventory.metrics.source == "builtin":
            from opsplane.metrics.promql import InstantVector, MemorySource, PromQLError, Scalar, instant

            try:
                value = instant(expr, self.samples() or MemorySource(), at)
            except PromQLError as exc:
                raise OpsplaneError(f"{expr}: {exc}") from None
            if isinstance(value, Scalar):
                return [({}, value.value)]
            if isinstance(value, InstantVector):
                return [(dict(labels), v) for labels, v in value.samples]
            raise OpsplaneError(f"{expr}: not an instant vector or scalar")
        data = self._client_call(lambda c: c.query(expr, at))
        if data["resultType"] == "scalar":
            return [({}, _number(data["result"][1]))]
        return [(dict(s["metric"]), _number(s["value"][1])) for s in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step: float) -> RangeSeries:
        """`expr` from `start` to `end` every `step` seconds: each series' labels and points."""
        if self.samples is not None and self.inventory.metrics.source == "builtin":
            from opsplane.metrics.promql import MemorySource, PromQLError, range_query

            try:
                matrix = range_query(expr, self.samples() or MemorySource(), start, end, step)
            except PromQLError as exc:
                raise OpsplaneError(f"{expr}: {exc}") from None
            return [(dict(labels), [(t, v) for t, v in points])
                    for labels, points in matrix.series]
        data = self._client_call(lambda c: c.query_range(expr, start, end, step))
        return [(dict(s["metric"]), [(float(t), _number(v)) for t, v in s["values"]]) for s in data["result"]]

    def _client_call(self, call: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        from opsplane.metrics.remote import query_client

        client = query_client(self.inventory, self.environ)
        try:
            return call(client)
        finally:
            client.close()


def _number(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def function(job: Job) -> Callable[[JobEnv], Report | None]:
    module_name, _, attribute = job.entry.partition(":")
    return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]


def run_job(job: Job, env: JobEnv) -> Report | None:
    """Run `job`; what it could not do is a failed report with the reason, never a traceback.
    A usage error (a wrong argument from a person) is raised."""
    try:
        return function(job)(env)
    except UsageError:
        raise
    except Exception as exc:  # any failure to look is a report of its own
        return Report(job=job.name, subject="-", summary=f"{job.name} could not run: {exc}", failed=True)


def run_and_save(job: Job, env: JobEnv, *, trigger: str, requested_by: str,
                 slot: datetime | None = None) -> Any:
    """Run `job` and keep its report (None: nothing to look at). Returns the stored row."""
    from opsplane.reports import service

    started = env.clock.now()
    report = run_job(job, env)
    if report is None:
        return None
    with env.store.session() as session:
        row = service.save(session, report, trigger=trigger, requested_by=requested_by, slot=slot,
                           started_at=started, now=env.clock.now())
    return row
