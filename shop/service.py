"""What every shop service shares: the runtime objects (metrics, faults, release, database,
cache, downstream client), the operational routes (/health, /version, /metrics, /admin/faults),
and `build_app`, which puts a service's own routes on top of them."""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pydantic
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shop.admin import admin_router
from shop.cache import ResponseCache
from shop.db import (
    Database,
    DependencyUnavailable,
    Migration,
    create_engine,
    ensure_schema_with_retry,
    migrate,
    migration_named,
)
from shop.downstream import Downstreams
from shop.faults import FaultInjector, FaultPlan
from shop.health import DEGRADED, Dependency, HealthChecker
from shop.middleware import RouteNamer, ShopMiddleware, note_failure
from shop.releases import CRASH_EXIT_CODE, Release, ReleaseBehaviour, UnknownRelease, get_by_name
from shop.settings import ShopConfigError, ShopSettings
from shop.telemetry import ClientTally, ErrorWindow, OutcomeCounter, ShopMetrics

log = logging.getLogger("shop")


@dataclass(frozen=True)
class ServiceSpec:
    """A service: what it depends on, the routes it adds, and which of them a release that
    slows or fails requests acts on (`shop.releases`): its main routes, and its checkout."""

    name: str
    routes: Callable[[ShopRuntime], APIRouter]
    database: bool = False
    cache: bool = False
    downstreams: tuple[str, ...] = ()
    main_routes: tuple[str, ...] = ()
    checkout_route: str | None = None
    client_log: bool = False  # log its busiest client addresses each window (the gateway)


class ShopRuntime:
    """The objects one service process shares between its requests."""

    def __init__(self, spec: ServiceSpec, settings: ShopSettings, *,
                 exit_process: Callable[[int], None] = os._exit) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self.metrics = ShopMetrics(spec.name, settings.version)
        self.faults = FaultInjector(seed=settings.seed, exit_process=exit_process)
        self.release = ReleaseBehaviour(_release(settings.version), main_routes=spec.main_routes,
                                        checkout_route=spec.checkout_route, seed=settings.seed)
        self._exit = exit_process
        self._crash: asyncio.TimerHandle | None = None
        self.errors = ErrorWindow()
        self.clients = (ClientTally(settings.client_window, logging.getLogger("shop.clients").info)
                        if spec.client_log else None)
        self.rng = random.Random(settings.seed)
        self.database: Database | None = None
        self.cache: ResponseCache | None = None
        self.downstreams: Downstreams | None = None
        if spec.database:
            engine = create_engine(settings.database_url, pool_size=settings.db_pool_size,
                                   max_overflow=settings.db_max_overflow)
            self.database = Database(engine, self.faults)
            self.metrics.pool_gauges(self.database.pool_in_use, self.database.pool_size)
            self.metrics.watch_queries(engine)
        if spec.cache:
            requests = self.metrics.counter("cache_requests", "Cache look-ups by result.", "result",
                                            ("hit", "miss", "error"))
            if settings.redis_url:
                self.cache = ResponseCache(settings.redis_url, ttl=settings.cache_ttl, faults=self.faults,
                                           requests=requests)
        if spec.downstreams:
            urls = {name: settings.downstream_urls[name] for name in spec.downstreams}
            self.downstreams = Downstreams(urls, self.faults)

    def require_database(self) -> Database:
        if self.database is None:
            raise RuntimeError(f"{self.name} has no database")
        return self.database

    def require_downstreams(self) -> Downstreams:
        if self.downstreams is None:
            raise RuntimeError(f"{self.name} calls no other service")
        return self.downstreams

    def counter(self, name: str, documentation: str, label: str, values: tuple[str, ...]) -> OutcomeCounter:
        return self.metrics.counter(name, documentation, label, values)

    def dependencies(self) -> list[Dependency]:
        """The checks /health runs. Only the database is hard: without the cache or a downstream
        service the service still answers part of its API, so it is degraded, not down."""
        found: list[Dependency] = []
        if self.database is not None:
            found.append(Dependency("database", True, _database_probe(self.database)))
        if self.cache is not None:
            found.append(Dependency("cache", False, _cache_probe(self.cache)))
        if self.downstreams is not None:
            found += [Dependency(name, False, _downstream_probe(self.downstreams, name))
                      for name in self.spec.downstreams]
        return found

    def fault_targets(self) -> list[str]:
        """The dependency names an outage fault may name."""
        return [dep.name for dep in self.dependencies()]

    @property
    def migration(self) -> Migration | None:
        """The schema change this service's release applies at start, if it has a database."""
        return None if self.database is None else migration_named(self.release.release.migration)

    async def start(self) -> None:
        """Create the schema and apply the release's migration (MigrationFailed when it fails)."""
        if self.database is not None:
            await anyio.to_thread.run_sync(ensure_schema_with_retry, self.database.engine)
            if self.migration is not None:
                await anyio.to_thread.run_sync(migrate, self.database.engine, self.migration)

    def schedule_release_crash(self) -> None:
        """Under a release that crashes, end the process that many seconds from now."""
        after = self.release.release.crash_after_s
        if after is not None:
            self._crash = asyncio.get_running_loop().call_later(after, self._crash_now, after)

    def _crash_now(self, after: float) -> None:
        log.error("release %s: exiting with code %d, %g s after it began to answer",
                  self.release.name, CRASH_EXIT_CODE, after)
        self._exit(CRASH_EXIT_CODE)

    async def close(self) -> None:
        if self._crash is not None:
            self._crash.cancel()
        await self.faults.close()
        if self.downstreams is not None:
            await self.downstreams.close()
        if self.cache is not None:
            await self.cache.close()
        if self.database is not None:
            self.database.dispose()


def _release(name: str) -> Release:
    """The release `name`; ShopConfigError for settings built by hand with an unknown one."""
    try:
        return get_by_name(name)
    except UnknownRelease as exc:
        raise ShopConfigError(f"SHOP_VERSION={exc}") from None


def _database_probe(database: Database) -> Callable[[], Any]:
    async def probe() -> None:
        await database.ping()
    return probe


def _cache_probe(cache: ResponseCache) -> Callable[[], Any]:
    async def probe() -> None:
        await cache.ping()
    return probe


def _downstream_probe(downstreams: Downstreams, name: str) -> Callable[[], Any]:
    async def probe() -> tuple[str, str] | None:
        answer = await downstreams.request(name, "GET", "/health", timeout=0.8)
        try:
            status = answer.json().get("status")
        except ValueError:
            status = None
        if answer.status_code != 200:
            raise DependencyUnavailable(name, f"/health answered HTTP {answer.status_code} ({status})")
        if status != "ok":
            return DEGRADED, f"{name} reports {status}"
        return None
    return probe


def startup_plan(settings: ShopSettings, routes: set[str], dependencies: list[str]) -> FaultPlan:
    """The SHOP_FAULTS plan, checked like a PUT /admin/faults; ShopConfigError when it is wrong."""
    try:
        plan = FaultPlan.model_validate(settings.faults)
    except pydantic.ValidationError as exc:
        raise ShopConfigError(f"SHOP_FAULTS is invalid: {exc}") from None
    problems = plan.problems(routes, dependencies)
    if problems:
        raise ShopConfigError("SHOP_FAULTS is invalid: " + "; ".join(problems))
    return plan


def build_app(spec: ServiceSpec, settings: ShopSettings, *,
              exit_process: Callable[[int], None] = os._exit) -> FastAPI:
    """The FastAPI app of one service; resources open in its lifespan and close after it."""
    runtime = ShopRuntime(spec, settings, exit_process=exit_process)
    health = HealthChecker(spec.name, settings.version, runtime.dependencies(), runtime.errors.ratio)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        runtime.faults.apply(plan)
        runtime.schedule_release_crash()
        log.info("%s %s ready", spec.name, settings.version)
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(title=f"shop {spec.name}", version=settings.version, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.runtime = runtime
    routers: list[APIRouter] = []
    routers.append(_operational_router(runtime, health))
    routers.append(admin_router(runtime.faults, settings.admin_token, lambda: namer.templates,
                                runtime.fault_targets()))
    routers.append(spec.routes(runtime))
    for router in routers:
        app.include_router(router)
    # Named from our own routers: FastAPI may keep included routers as nested objects.
    namer = RouteNamer([route for router in routers for route in router.routes])
    plan = startup_plan(settings, namer.templates, runtime.fault_targets())
    app.add_exception_handler(DependencyUnavailable, _unavailable)  # type: ignore[arg-type]
    app.add_middleware(ShopMiddleware, namer=namer, metrics=runtime.metrics,  # type: ignore[arg-type]
                       faults=runtime.faults, errors=runtime.errors, release=runtime.release,
                       clients=runtime.clients)
    return app


async def _unavailable(request: Request, exc: DependencyUnavailable) -> JSONResponse:
    note_failure(request, str(exc))
    return JSONResponse({"error": str(exc), "dependency": exc.dependency}, status_code=503)


def _operational_router(runtime: ShopRuntime, health: HealthChecker) -> APIRouter:
    router = APIRouter(tags=["operations"])
    version = {"service": runtime.name, "version": runtime.settings.version}

    @router.get("/health")
    async def get_health(request: Request) -> JSONResponse:
        status, body = await health.report()
        if status >= 500:
            down = [f"{name}: {check.get('reason', check['status'])}"
                    for name, check in body["checks"].items() if check["status"] == "down"]
            note_failure(request, "down, " + "; ".join(down))
        return JSONResponse(body, status_code=status)

    @router.get("/version")
    async def get_version() -> dict[str, str]:
        return version

    @router.get("/metrics")
    async def get_metrics() -> Response:
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
