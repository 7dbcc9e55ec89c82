"""Which workers `serve` runs, in which order: the one place where workers are registered.

Each entry names a domain's factory, `module:function`, imported only when `serve` builds its
workers (a domain that the inventory does not call for costs no import). A factory takes the
`WorkerContext` and returns its worker, or None when the inventory gives it nothing to do. The
workers start in this order and stop in the reverse one: the health worker first (it loads
the recorded states and runs the checks the others read), the notify worker last.

A new domain adds one line here (the deploy and backup domains are the next). Workers from
outside the package, for a test or a site's own, are added after these by the environment
variable OPSPLANE_EXTRA_WORKERS: `module:function` entries separated by commas.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping

from opsplane.errors import UsageError
from opsplane.workers import Worker, WorkerContext, WorkerSet

Factory = Callable[[WorkerContext], Worker | None]

WORKERS: tuple[str, ...] = (
    "opsplane.health.worker:build",  # probes and the state writer
    "opsplane.metrics.worker:build",  # scrapes into the sample store
    "opsplane.slo.worker:build",  # each SLO's minutes, burn rates and budget, the SLO series
    "opsplane.capacity.worker:build",  # each resource's use recorded for the capacity forecasts
    "opsplane.alerts.worker:build",  # the rule cycle and received alerts
    "opsplane.runtime.worker:build",  # the runtime's notices
    "opsplane.deploy.worker:build",  # deploys, one claimed step at a time
    "opsplane.backup.worker:build",  # backup and verification schedules, the backup series
    "opsplane.checklists.worker:build",  # the operator's scheduled checklists, kept as reports
    "opsplane.reports.worker:build",  # maintenance, security and capacity jobs, kept as reports
    "opsplane.gameday.worker:build",  # game days asked for and scheduled; faults of cut-off ones undone
    "opsplane.runbooks.worker:build",  # the closed loop: an incident's runbook run unattended
    "opsplane.incidents.worker:build",  # paging of open incidents
    "opsplane.notify.worker:build",  # the outbox's dispatcher
)
EXTRA_WORKERS = "OPSPLANE_EXTRA_WORKERS"


def build_workers(ctx: WorkerContext, environ: Mapping[str, str] | None = None) -> WorkerSet:
    """The workers the inventory calls for, in start order, with `ctx.workers` set to them."""
    environ = os.environ if environ is None else environ
    extra = [entry.strip() for entry in environ.get(EXTRA_WORKERS, "").split(",") if entry.strip()]
    workers = [worker for entry in (*WORKERS, *extra) if (worker := load(entry)(ctx)) is not None]
    ctx.workers = WorkerSet(workers)
    return ctx.workers


def load(entry: str) -> Factory:
    """The factory `module:function` names; a usage error (exit code 3) when there is none."""
    module_name, _, attribute = entry.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute) if attribute else None
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"{EXTRA_WORKERS}: no worker factory {entry!r} ({exc})") from None
    if not callable(factory):
        raise UsageError(f"{EXTRA_WORKERS}: {entry!r} is not module:function naming a worker factory")
    return factory  # type: ignore[no-any-return]
