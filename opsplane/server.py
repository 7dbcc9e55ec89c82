"""The control plane: the composition of the domains' workers, and the app that serves it.

`ControlPlane` gives the workers `opsplane.composition` registers their context (inventory,
store, clock, environment, metrics, the store's threads), starts them in order and stops them
in the reverse one, records the control plane's own start and stop, and reads what the workers
know for the pages and routes (`opsplane.live.LiveState`). `create_app` serves it: `/health`,
`/metrics`, the API, the dashboard and the status page (docs/ARCHITECTURE.md, "Workers").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

from fastapi import FastAPI

from opsplane.clock import Clock, SystemClock
from opsplane.composition import build_workers
from opsplane.config.models import Inventory
from opsplane.events import service as events
from opsplane.health.targets import environment_name
from opsplane.store import Store
from opsplane.telemetry import ControlPlaneMetrics
from opsplane.workers import Worker, WorkerContext, WorkerHealth, WorkerMetrics

if TYPE_CHECKING:
    from opsplane.alerts.flows import Alerting
    from opsplane.alerts.intake import ReceivedAlert
    from opsplane.alerts.worker import AlertsWorker
    from opsplane.drivers.probes.resolve import Resolver
    from opsplane.drivers.runtime import RuntimeWatch
    from opsplane.health.history import ProbeHistory
    from opsplane.health.models import ProbeResult
    from opsplane.health.targets import CheckTarget
    from opsplane.health.worker import HealthWorker
    from opsplane.metrics.remote import PrometheusClient
    from opsplane.metrics.scrape import MetricsScraper
    from opsplane.metrics.store import SampleStore
    from opsplane.metrics.worker import MetricsWorker

log = logging.getLogger("opsplane.server")
ACTOR = "system:control-plane"


class ControlPlane:
    """Everything `opsplane serve` runs, with its world (store, clock, environment) injected."""

    def __init__(
        self,
        inventory: Inventory,
        store: Store,
        *,
        env: str | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        metrics: ControlPlaneMetrics | None = None,
        flush_interval: float = 0.5,
        runtime: RuntimeWatch | None = None,
        resolver: Resolver | None = None,
        inventory_dir: Path | None = None,
    ) -> None:
        """`runtime`, when given, is followed for its notices (`drivers.runtime.watched_runtime`
        gives the inventory's); `resolver` looks up the checks' host names (default: the
        process's, on threads of its own); `environ` holds the secrets (default: the process's
        environment, which may also name extra workers: `composition.EXTRA_WORKERS`);
        `inventory_dir` is where relative paths of the inventory start (default: the current
        directory)."""
        self.inventory = inventory
        self.store = store
        self.env = environment_name(inventory, env)
        self.clock = clock or SystemClock()
        self.metrics = metrics or ControlPlaneMetrics()
        self.context = WorkerContext(inventory=inventory, store=store, clock=self.clock, env=self.env,
                                     metrics=self.metrics, environ=environ, flush_interval=flush_interval,
                                     resolver=resolver, runtime=runtime,
                                     inventory_dir=inventory_dir or Path.cwd())
        self.workers = build_workers(self.context, environ)
        self.metrics.registry.register(WorkerMetrics(self.workers.health))

    def wake_worker(self, name: str) -> bool:
        return self.workers.wake(name)

    def worker(self, name: str) -> Worker:
        found = self.workers.get(name)
        if found is None:
            raise KeyError(f"no worker {name!r}")
        return found

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        _raise_open_files_limit()
        self.started_at = self.clock.now()
        await self.context.in_store(self._record_lifecycle, "control_plane.started")
        await self.workers.start()
        log.info("watching %d checks of %d components in %s with workers %s", len(self.targets),
                 len(list(self.inventory.components())), self.env, ", ".join(w.name for w in self.workers))

    async def stop(self) -> None:
        """Stop the workers (the health worker writes what is pending), record the stop."""
        await self.workers.stop()
        await self.context.in_store(self._record_lifecycle, "control_plane.stopped")
        self.context.store_threads.close()

    def _record_lifecycle(self, kind: str) -> None:
        with self.store.session() as session:
            events.record(session, kind=kind, actor=ACTOR, target="control-plane",
                          outcome="success", clock=self.clock,
                          details={"environment": self.env, "checks": len(self.targets)})

    def own_health(self) -> tuple[Literal["ok", "starting", "degraded"], str | None, list[WorkerHealth]]:
        """starting (before the workers start and after they stop), degraded (a worker crashed,
        ended, fell far behind or keeps failing: the reasons) or ok."""
        reports = self.workers.health()
        if not self.workers.started:
            return "starting", None, reports
        problems = [report.problem for report in reports if report.problem]
        return ("degraded" if problems else "ok"), "; ".join(problems) or None, reports

    # --- what the workers know (opsplane.live.LiveState) ----------------------------------

    @property
    def started_at(self) -> datetime | None:
        return self.context.started_at

    @started_at.setter
    def started_at(self, value: datetime | None) -> None:
        self.context.started_at = value

    @property
    def health(self) -> HealthWorker:
        return cast("HealthWorker", self.worker("health"))

    @property
    def targets(self) -> list[CheckTarget]:
        return self.health.targets

    @property
    def latest(self) -> dict[str, ProbeResult]:
        return self.health.latest

    @property
    def checked_at(self) -> dict[str, datetime]:
        return self.health.checked_at

    @property
    def history(self) -> ProbeHistory:
        return self.health.history

    def since(self, check_id: str) -> datetime | None:
        return self.health.since(check_id)

    @property
    def scraper(self) -> MetricsScraper:
        return cast("MetricsWorker", self.worker("metrics")).scraper

    @property
    def samples(self) -> SampleStore | None:
        return cast("MetricsWorker", self.worker("metrics")).store

    @property
    def alerts(self) -> AlertsWorker:
        return cast("AlertsWorker", self.worker("alerts"))

    @property
    def alerting(self) -> Alerting | None:
        return self.alerts.alerting

    @property
    def prometheus(self) -> PrometheusClient | None:
        return self.alerts.prometheus

    def receive_alerts(self, alerts: Sequence[ReceivedAlert]) -> list[ReceivedAlert] | None:
        return self.alerts.receive_alerts(alerts)


def _raise_open_files_limit() -> None:
    # Thousands of probes in flight need thousands of sockets; the soft limit is often 1024.
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def create_app(plane: ControlPlane, *, inventory_dir: Path | None = None) -> FastAPI:
    """The FastAPI app serving `plane`: /health, /metrics, the authenticated /api/v1 and the
    dashboard under /ui. `inventory_dir` (default: the current directory) is where the
    inventory's relative paths start, such as the runtime's state for the instance list.

    Every route is registered here, but the domains behind them (incidents, on-call, the
    dashboard's pages and templates, ...) are imported by the first request that needs them:
    the views modules import only what their signatures name (docs/api.md)."""
    from opsplane.alerts.intake_views import router as intake_router
    from opsplane.api import errors
    from opsplane.api.document import mount
    from opsplane.api.own import router as own_router
    from opsplane.api.own import workers_router
    from opsplane.auth.views import router as auth_router
    from opsplane.backup.views import router as backup_router
    from opsplane.checklists.views import router as checklists_router
    from opsplane.deploy.views import router as deploy_router
    from opsplane.events.views import router as events_router
    from opsplane.gameday.views import router as gameday_router
    from opsplane.health.views import router as health_router
    from opsplane.incidents.views import router as incidents_router
    from opsplane.metrics.views import router as metrics_router
    from opsplane.oncall.views import router as oncall_router
    from opsplane.reports.views import router as reports_router
    from opsplane.runbooks.views import router as runbooks_router
    from opsplane.runtime.views import router as runtime_router
    from opsplane.slo.views import router as slo_router
    from opsplane.web.backup_views import router as backup_pages_router
    from opsplane.web.capacity_views import router as capacity_pages_router
    from opsplane.web.deploy_views import router as deploy_pages_router
    from opsplane.web.incident_views import router as incident_pages_router
    from opsplane.web.runbook_views import router as runbook_pages_router
    from opsplane.web.slo_views import router as slo_pages_router
    from opsplane.web.status_views import router as status_router
    from opsplane.web.views import router as web_router

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from opsplane.web.signin import keep_writing, limiter_for

        await plane.start()
        # failed dashboard sign-ins, one event per address and window (docs/dashboard.md)
        sign_ins = asyncio.get_running_loop().create_task(keep_writing(limiter_for(app), plane.store))
        try:
            yield
        finally:
            sign_ins.cancel()
            await asyncio.gather(sign_ins, return_exceptions=True)
            await plane.stop()

    # The document is served to viewers at /api/v1/openapi.json (auth.views), not publicly.
    app = FastAPI(title="opsplane", version=_version(), lifespan=lifespan,
                  description="The control plane's API: health, events, metrics, alerts, incidents, "
                              "on-call and the runtime. Every route but /health, /metrics and "
                              "/status.json needs a bearer token (docs/api.md).",
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.plane = plane
    app.state.inventory_dir = inventory_dir or Path.cwd()
    errors.install(app)

    mount(app, own_router, "")  # /health and /metrics, without a token
    mount(app, workers_router, "/api/v1")
    for router in (health_router, events_router, auth_router, runtime_router, metrics_router,
                   oncall_router, incidents_router, deploy_router, backup_router, runbooks_router,
                   slo_router, checklists_router,
                   gameday_router, reports_router):
        mount(app, router, "/api/v1")
    mount(app, intake_router, "/api/v2")  # where Prometheus sends alerts to an Alertmanager
    mount(app, web_router, "")
    mount(app, incident_pages_router, "")
    mount(app, deploy_pages_router, "")
    mount(app, backup_pages_router, "")
    mount(app, runbook_pages_router, "")
    mount(app, slo_pages_router, "")
    mount(app, capacity_pages_router, "")
    mount(app, status_router, "")  # the public status page: no login (docs/status-page.md)
    return app


def _version() -> str:
    from opsplane import __version__

    return __version__
