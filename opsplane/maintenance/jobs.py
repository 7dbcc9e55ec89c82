"""The scheduled jobs of database care (opsplane/reports/jobs.py lists them): `db-report`,
every database of the inventory in one report, and `db-pools`, the pool advice of every
PgBouncer its `pgbouncer` checks name."""

from __future__ import annotations

from opsplane.maintenance import flows
from opsplane.reports.jobs import JobEnv
from opsplane.reports.models import Report

# how long the monthly job watches each PgBouncer, and how often it looks
POOLS_SECONDS = 30.0
POOLS_INTERVAL = 1.0


def db_report(env: JobEnv) -> Report | None:
    return flows.report_all(env.inventory, env.environ)


def db_pools(env: JobEnv) -> Report | None:
    return flows.pools_report(env.inventory, env.environ, seconds=POOLS_SECONDS, interval=POOLS_INTERVAL)
