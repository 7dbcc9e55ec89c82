"""`opsplane demo`: start the demo platform and a control plane watching it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Group
from rich.live import Live
from rich.text import Text

from opsplane.cli_support import exit_zero_on_sigterm, out
from opsplane.drivers.sandbox.ports import free_port

DEMO_DIR = Path(".opsplane") / "demo"


def demo(
    stop: bool = typer.Option(False, "--stop", help="Stop a running demo and everything it started."),
    port: int = typer.Option(
        -1, "--port", help="API port; 0 picks any free port [default: 8089 or the next free one]."
    ),
    duration: float = typer.Option(0, "--duration", help="Stop by itself after this many seconds."),
    outage: bool = typer.Option(True, "--outage/--no-outage",
                                help="Stage a catalog outage after 40 s to show impact and recovery."),
    directory: Path = typer.Option(DEMO_DIR, "--dir", help="Where the demo keeps its files."),
) -> None:
    """Run the demo: a small platform of local processes watched by opsplane. Ctrl-C stops it all."""
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
    out.print(f"opsplane demo: starting the platform in {base} …")
    try:
        await asyncio.to_thread(stack.start)
        for note in stack.notes:
            out.print(f"  [yellow]{note}[/]")
        inventory_path = base / "opsplane.yaml"
        inventory_path.write_text(stack.inventory_yaml(port))
        inventory = load(inventory_path)
        store = Store.open(f"sqlite:///{base / 'opsplane.db'}")
        with store.session() as session:
            admin = tokens.create(session, name="demo-admin", role=Role.ADMIN, actor="system:demo")
        plane = ControlPlane(inventory, store)
        server = uvicorn.Server(uvicorn.Config(create_app(plane), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        _welcome(base, port, admin, len(plane.targets))
        tasks = [asyncio.create_task(_display(plane))]
        if outage:
            tasks.append(asyncio.create_task(_stage_outage(stack)))
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
        await asyncio.to_thread(stack.stop)
        out.print("opsplane demo: stopped everything it started.")


def _welcome(base: Path, port: int, token: str, checks: int) -> None:
    url = f"http://127.0.0.1:{port}"
    out.print(f"""
[bold]opsplane is watching the demo platform[/] ({checks} checks every 5 s).
  API        {url}/api/v1/health   (bearer token below)
  metrics    {url}/metrics
  inventory  {base / 'opsplane.yaml'}
  admin token (shown once): [bold]{token}[/]

Try, in another terminal:
  curl -s -H 'Authorization: Bearer {token}' {url}/api/v1/health
  opsplane -c {base / 'opsplane.yaml'} health --detailed
  OPSPLANE_DATABASE_URL=sqlite:///{base / 'opsplane.db'} opsplane events
Ctrl-C (or `opsplane demo --stop`) stops everything.
""")


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


async def _stage_outage(stack: object, after: float = 40.0, length: float = 30.0) -> None:
    catalog = stack.services["catalog"]  # type: ignore[attr-defined]
    await asyncio.sleep(after)
    out.print("[yellow]demo: stopping catalog to stage an outage; gateway depends on it.[/]")
    await asyncio.to_thread(catalog.stop)
    await asyncio.sleep(length)
    out.print("[green]demo: starting catalog again.[/]")
    await asyncio.to_thread(catalog.start)


async def _stop_after(server: object, seconds: float) -> None:
    await asyncio.sleep(seconds)
    server.should_exit = True  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
