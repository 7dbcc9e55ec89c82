"""`opsplane serve`: run the control plane until SIGTERM or Ctrl-C."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from opsplane.cli_support import config_path, exit_zero_on_sigterm, out

if TYPE_CHECKING:
    from fastapi import FastAPI

    from opsplane.config.models import Inventory
    from opsplane.drivers.runtime import RuntimeWatch
    from opsplane.live import LiveState
    from opsplane.store import Store


def serve(
    ctx: typer.Context,
    host: str = typer.Option(None, "--host", help="Listen address (default: server.listen_host)."),
    port: int = typer.Option(None, "--port", help="Listen port (default: server.listen_port)."),
    env: str = typer.Option(None, "--env", "-e", help="Environment to watch."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the probe scheduler and the API in one process; SIGTERM stops it cleanly."""
    import uvicorn

    from opsplane.config.loader import load
    from opsplane.store import Store

    path = config_path(ctx)
    inventory = load(path)
    # Migrations, if due, run in a child: their imports would stay in serve for good.
    store = Store.open_migrated_apart()
    runtime = None
    if inventory.runs_services:  # the runtime's driver is not even imported otherwise
        from opsplane.drivers.runtime import watched_runtime

        runtime = watched_runtime(inventory, base_dir=path.resolve().parent)
    plane, app = compose(inventory, store, env=env, runtime=runtime, inventory_dir=path.resolve().parent)
    listen_host = host or inventory.server.listen_host
    listen_port = port or inventory.server.listen_port
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if logging.getLogger().level > logging.DEBUG:
        # httpx logs every request it sends at INFO: a hundred lines each time a deploy proves a
        # split, one per webhook sent. What matters of them is recorded as events already.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    out.print(f"opsplane serving {inventory.platform.name} ({plane.env}): "
              f"{len(plane.targets)} checks, API on http://{listen_host}:{listen_port}, "
              f"store {store.url}")
    config = uvicorn.Config(app, host=listen_host, port=listen_port, log_level=log_level,
                            loop=_loop(), access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    exit_zero_on_sigterm()
    # What was built at start-up (inventory, targets, imports) lives as long as the process:
    # keep it out of the collector's way so full collections stay short on large inventories.
    gc.collect()
    gc.freeze()
    try:
        server.run()
    finally:
        store.close()
    if not server.started:
        raise typer.Exit(2)


def compose(inventory: Inventory, store: Store, *, inventory_dir: Path, env: str | None = None,
            runtime: RuntimeWatch | None = None) -> tuple[LiveState, FastAPI]:
    """The control plane over `store` and the app that serves it, as `serve` and `opsplane demo`
    run them: the one place outside the tests that builds `opsplane.server`'s composition."""
    from opsplane.server import ControlPlane, create_app

    plane = ControlPlane(inventory, store, env=env, runtime=runtime, inventory_dir=inventory_dir)
    return plane, create_app(plane, inventory_dir=inventory_dir)


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
