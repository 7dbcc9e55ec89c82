"""`opsplane demo`: start the demo platform and a control plane watching it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Group
from rich.live import Live
from rich.text import Text

from opsplane.cli_support import exit_zero_on_sigterm, out
from opsplane.drivers.sandbox.ports import free_port

if TYPE_CHECKING:
    from opsplane.demo.stack import DemoStack

DEMO_DIR = Path(".opsplane") / "demo"


def demo(
    stop: bool = typer.Option(False, "--stop", help="Stop a running demo and everything it started."),
    port: int = typer.Option(
        -1, "--port", help="API port; 0 picks any free port [default: 8089 or the next free one]."
    ),
    duration: float = typer.Option(0, "--duration", help="Stop by itself after this many seconds."),
    outage: bool = typer.Option(True, "--outage/--no-outage",
                                help="Inject faults after 45 s (payments errors, a catalog crash) "
                                     "to show impact and recovery."),
    directory: Path = typer.Option(DEMO_DIR, "--dir", help="Where the demo keeps its files."),
) -> None:
    """Run the demo: the reference shop on local processes, watched by opsplane, with a dashboard.

    Ctrl-C (or `opsplane demo --stop` from another terminal) stops everything it started.
    """
    from opsplane.demo.stack import stop_recorded

    if stop:
        stopped = stop_recorded(directory)
        out.print("stopped: " + (", ".join(stopped) if stopped else "no demo was running"))
        return
    exit_zero_on_sigterm()
    try:
        api_port = _api_port() if port < 0 else port or free_port()
        asyncio.run(_run(directory.resolve(), api_port, duration, outage))
    except KeyboardInterrupt:
        pass


def _api_port() -> int:
    import socket

    for candidate in range(8089, 8100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", candidate)) != 0:
                return candidate
    return free_port()


async def _run(base: Path, port: int, duration: float, outage: bool) -> None:
    import uvicorn

    from opsplane.auth import service as tokens
    from opsplane.auth.service import Role
    from opsplane.config.loader import load
    from opsplane.demo.stack import DemoStack
    from opsplane.server import ControlPlane, create_app
    from opsplane.store import Store

    stack = DemoStack(base)
    out.print(f"opsplane demo: starting PostgreSQL and Redis in {base} …")
    try:
        await asyncio.to_thread(stack.start_servers)
        for note in stack.notes:
            out.print(f"  [yellow]{note}[/]")
        inventory = load(stack.write_inventory(port))
        out.print("opsplane demo: starting the shop (gateway, catalog, orders, payments) and "
                  "its shoppers with the process runtime …")
        await asyncio.to_thread(stack.start_shop, inventory)
        store = Store.open(stack.store_url)
        with store.session() as session:
            admin = tokens.create(session, name="demo-admin", role=Role.ADMIN, actor="system:demo")
        plane = ControlPlane(inventory, store, runtime=stack.runtime)
        app = create_app(plane, inventory_dir=base)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        _welcome(stack, port, admin, len(plane.targets))
        tasks = [asyncio.create_task(_display(plane))]
        if outage:
            tasks.append(asyncio.create_task(_stage_outages(stack)))
        if duration:
            tasks.append(asyncio.create_task(_stop_after(server, duration)))
        try:
            await server.serve()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            store.close()
    finally:
        out.print("opsplane demo: stopping …")
        await asyncio.to_thread(stack.stop)
        out.print("opsplane demo: stopped everything it started.")


def _welcome(stack: DemoStack, port: int, token: str, checks: int) -> None:
    base = stack.base
    inventory = base / "opsplane.yaml"
    url = f"http://127.0.0.1:{port}"
    out.print(f"""
[bold]opsplane is running the demo shop and watching it[/] ({checks} checks every 5 s).
  dashboard  {url}/ui/   (sign in with the admin token)
  admin token (shown once): [bold]{token}[/]
  API        {url}/api/v1/health   (Authorization: Bearer <token>)
  shop       {stack.gateway_url}/api/products   (shoppers are already on it)
  inventory  {inventory}

Try, in another terminal:
  export OPSPLANE_CONFIG={inventory} OPSPLANE_DATABASE_URL={stack.store_url}
  opsplane ps; opsplane stats; opsplane health --detailed
  opsplane logs orders --since 5m; opsplane logs --errors
  opsplane scale catalog 3; opsplane events --kind 'runtime.*'
  opsplane alerts; OPSPLANE_TOKEN=<token> opsplane query 'sum by (service) (rate(http_requests_total[1m]))'
Ctrl-C (or `opsplane demo --stop`) stops everything.
""")  # noqa: E501


async def _display(plane: object) -> None:
    from opsplane.health.report import as_table
    from opsplane.health.status import assess

    def render() -> Group:
        statuses = assess(plane.inventory, plane.latest)  # type: ignore[attr-defined]
        lines = [Text(s.headline, style="red") for s in statuses if s.checked and s.impacted]
        return Group(as_table(statuses, title="demo-shop · development"), *lines)

    if not out.is_terminal:
        # Logs and CI: print each change of a component's state on its own line.
        seen: dict[str, str] = {}
        while True:
            await asyncio.sleep(1)
            for s in assess(plane.inventory, plane.latest):  # type: ignore[attr-defined]
                if s.checked and seen.get(s.name) != s.state.value:
                    seen[s.name] = s.state.value
                    out.print(f"{s.headline}")
    with Live(console=out, auto_refresh=False) as live:
        while True:
            await asyncio.sleep(1)
            live.update(render(), refresh=True)


async def _stage_outages(stack: DemoStack, first: float = 45.0) -> None:
    """Two incidents, by the shop's own fault injection: payments fails a third of charges
    for a minute (orders is impacted), then catalog crashes and the runtime restarts it."""
    import httpx

    token = stack.admin_token()
    ports = stack.ports

    async def faults(service: str, plan: dict[str, object] | None) -> None:
        url = f"http://127.0.0.1:{ports[service]}/admin/faults"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
            try:
                if plan is None:
                    await client.delete(url, headers=headers)
                else:
                    await client.put(url, headers=headers, json=plan)
            except httpx.HTTPError as exc:
                out.print(f"[yellow]demo: could not reach {service} to set a fault: {exc}[/]")

    await asyncio.sleep(first)
    out.print("[yellow]demo: payments starts failing 30 % of charges for 60 s; orders depends on it.[/]")
    await faults("payments", {"error_ratio": {"/charges": 0.3}})
    await asyncio.sleep(60)
    out.print("[green]demo: payments recovers.[/]")
    await faults("payments", None)
    await asyncio.sleep(30)
    out.print("[yellow]demo: catalog crashes; the runtime restarts it (see `opsplane events`).[/]")
    await faults("catalog", {"crash": {"after_requests": 0, "exit_code": 1}})


async def _stop_after(server: object, seconds: float) -> None:
    await asyncio.sleep(seconds)
    server.should_exit = True  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
