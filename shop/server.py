"""Serving one shop service with uvicorn (uvloop and httptools when installed)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import uvicorn
from fastapi import FastAPI

from shop import SERVICES
from shop.db import Migration, migration_named
from shop.releases import get_by_name
from shop.service import ServiceSpec, build_app
from shop.settings import ShopConfigError, load_settings


def spec_for(service: str) -> ServiceSpec:
    """The ServiceSpec of `service`; ShopConfigError listing the services otherwise."""
    if service not in SERVICES:
        raise ShopConfigError(f"unknown service {service!r}: choose one of {', '.join(SERVICES)}")
    # Imported on demand: a payments process never loads the catalog's code.
    module = __import__(f"shop.{service}", fromlist=["SPEC"])
    spec: ServiceSpec = module.SPEC
    return spec


def create_app(service: str, environ: Mapping[str, str] | None = None) -> FastAPI:
    """The app of `service` configured from `environ` (os.environ when None)."""
    return build_app(spec_for(service), load_settings(environ))


def _available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _database_ready(url: str, migration: Migration | None, who: str) -> bool:
    """Create the schema and apply the release's migration before serving, waiting for a
    database that starts after us; a database still unreachable after the wait, or a migration
    that fails, is one logged line, not a traceback."""
    import sqlalchemy as sa

    from shop.db import MigrationFailed, create_engine, ensure_schema_with_retry, migrate

    log = logging.getLogger("shop")
    engine = create_engine(url, pool_size=1, max_overflow=0)
    try:
        ensure_schema_with_retry(engine)
        if migration is not None:
            migrate(engine, migration)
    except sa.exc.OperationalError as exc:
        log.error("database unreachable, giving up: %s", str(exc).splitlines()[0])
        return False
    except MigrationFailed as exc:
        log.error("%s: %s; not starting", who, exc)
        return False
    finally:
        engine.dispose()
    return True


def serve(service: str, host: str = "127.0.0.1", port: int = 8200, log_level: str = "warning") -> int:
    """Run `service` until SIGINT or SIGTERM; the exit code: 0 after a clean stop, 1 when it
    could not start (database unreachable, the release's migration failed, port taken). A release
    that crashes ends the process itself. Raises ShopConfigError on bad settings."""
    logging.basicConfig(level=os.environ.get("SHOP_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    spec, settings = spec_for(service), load_settings(None)
    who = f"{service} {settings.version}"
    migration = migration_named(get_by_name(settings.version).migration)
    if spec.database and not _database_ready(settings.database_url, migration, who):
        return 1
    app = build_app(spec, settings)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=False, server_header=False,
        loop="uvloop" if _available("uvloop") else "asyncio",
        http="httptools" if _available("httptools") else "h11",
        backlog=2048, timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        logging.getLogger("shop").error("%s did not start: see the errors above", service)
        return 1
    return 0
