"""`opsplane demo`: start the demo platform and a control plane watching it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shlex
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.text import Text

from opsplane.cli_support import out
from opsplane.demo.lifecycle import GuardedOutput, StopRequest
from opsplane.errors import OpsplaneError

if TYPE_CHECKING:
    import uvicorn

    from opsplane.demo.stack import DemoStack
    from opsplane.live import LiveState

DEMO_DIR = Path(".opsplane") / "demo"


def demo(
    stop: bool = typer.Option(False, "--stop", help="Stop a running demo and everything it started."),
    port: int = typer.Option(
        -1, "--port", help="API port; 0 picks any free port (default: 8089 or the next free one)."
    ),
    duration: float = typer.Option(0, "--duration", help="Stop by itself after this many seconds."),
    outage: bool = typer.Option(True, "--outage/--no-outage",
                                help="Inject faults after 45 s (payments errors, a catalog crash) "
                                     "to show impact and recovery."),
    directory: Path = typer.Option(DEMO_DIR, "--dir", help="Where the demo keeps its files."),
    traffic: bool = typer.Option(True, "--traffic/--no-traffic", hidden=True,
                                 help="Start the shoppers (tests of the demo's processes leave them out)."),
) -> None:
    """Run the demo: the reference shop on local processes, watched by opsplane, with a dashboard.

    Ctrl-C, closing its terminal, or `opsplane demo --stop` from another terminal stops
    everything it started.
    """
    from opsplane.demo.records import ensure_not_running

    base = directory.resolve()
    if stop:
        _stop(base)
        return
    ensure_not_running(base)
    # The API's socket is bound before anything starts, so that none of the servers, services
    # and shoppers the demo starts can take its port in the meantime.
    listener = _api_socket() if port < 0 else _bind(port)
    if listener is None:
        raise OpsplaneError(f"the demo's API cannot listen on 127.0.0.1:{port}: the port is taken; "
                            "give another with --port (0 picks any free one)")
    with listener:
        code = asyncio.run(_run(base, listener, duration, outage, traffic))
    if code:
        raise typer.Exit(code)


def _stop(base: Path) -> None:
    """Stop what the demo in `base` left running; exit 2 when something could not be stopped."""
    from opsplane.demo import records

    report = records.stop(base, on_progress=out.print)
    if not report.stopped and not report.left:
        out.print(f"no demo was running from {base}")
    if report.stopped:
        out.print("stopped: " + ", ".join(report.stopped))
    if report.left:
        out.print(f"[bold red]still running, could not be stopped:[/] {', '.join(report.left)}")
        raise typer.Exit(2)


def _api_socket() -> socket.socket:
    """A socket bound to 127.0.0.1 on 8089, or the next free port up to 8099, or any free one."""
    for candidate in [*range(8089, 8100), 0]:
        if (listener := _bind(candidate)) is not None:
            return listener
    raise OpsplaneError("no free port on 127.0.0.1 for the demo's API")


def _bind(port: int) -> socket.socket | None:
    """A TCP socket bound to 127.0.0.1:`port` (0: any free port), not yet listening; None when the
    port is taken."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError:
        listener.close()
        return None
    return listener


def _console(file: GuardedOutput) -> Console:
    console = Console(file=cast(IO[str], file), highlight=False, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 160  # a log or a pipe: don't squeeze the table into 80 columns
    return console


async def _run(base: Path, listener: socket.socket, duration: float, outage: bool, traffic: bool) -> int:
    """Run the demo until something asks it to stop, then stop everything it started.
    Returns the exit code: 0, or 2 when something it started could not be stopped."""
    from opsplane.demo.stack import DemoStack

    stop = StopRequest()
    stop.install()
    console = _console(GuardedOutput(sys.stdout, stop))
    watch = asyncio.create_task(stop.watch_output(_fileno(sys.stdout)))
    stack = DemoStack(base, traffic=traffic, slos=True)
    try:
        await _serve(stack, listener, duration, outage, console, stop)
    except BaseException:
        stop.set("it failed")
        raise
    finally:
        watch.cancel()
        console.print(f"opsplane demo: stopping ({stop.reason or 'the control plane ended'}) …")
        # Signals from here on only repeat the request: nothing interrupts the clean-up.
        report = await asyncio.to_thread(stack.stop)
        if report.left:
            console.print(f"[bold red]opsplane demo: could not stop[/] {', '.join(report.left)}")
        else:
            console.print("opsplane demo: stopped everything it started.")
    return 2 if report.left else 0


async def _serve(stack: DemoStack, listener: socket.socket, duration: float, outage: bool,
                 console: Console, stop: StopRequest) -> None:
    """Start the servers, the shop and the control plane, and serve until a stop is requested.
    A request that comes during a start-up step takes effect when the step is done."""
    from opsplane.auth import service as tokens
    from opsplane.auth.service import Role
    from opsplane.config.loader import load
    from opsplane.server_cli import compose
    from opsplane.store import Store

    port = int(listener.getsockname()[1])
    console.print(f"opsplane demo: starting PostgreSQL and Redis in {escape(str(stack.base))} …")
    await asyncio.to_thread(stack.start_servers)
    for note in stack.notes:
        console.print(f"  [yellow]{escape(note)}[/]")
    if stop.requested:
        return
    inventory = load(stack.write_inventory(port))
    console.print("opsplane demo: starting the shop (gateway, catalog, orders, payments) and "
                  "its shoppers with the process runtime …")
    await asyncio.to_thread(stack.start_shop, inventory)
    if stop.requested:
        return
    store = Store.open(stack.store_url)
    try:
        with store.session() as session:
            admin = tokens.create(session, name="demo-admin", role=Role.ADMIN, actor="system:demo")
        plane, app = compose(inventory, store, runtime=stack.runtime, inventory_dir=stack.base)
        server = _server(app, port)
        welcome = functools.partial(_welcome, console, stack, port, admin, len(plane.targets))
        tasks = [asyncio.create_task(_exit_on(stop, server)),
                 asyncio.create_task(_show(server, plane, console, welcome))]
        if outage:
            tasks.append(asyncio.create_task(_stage_outages(stack, console)))
        if duration:
            tasks.append(asyncio.create_task(_stop_after(stop, duration)))
        try:
            with contextlib.suppress(SystemExit):  # how uvicorn ends when it cannot listen
                await server.serve(sockets=[listener])
            if not server.started and not stop.requested:
                raise OpsplaneError(f"the demo's API could not listen on 127.0.0.1:{port}: see the "
                                    "error above; give another port with --port")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        store.close()


def _server(app: object, port: int) -> uvicorn.Server:
    """uvicorn serving the API and the dashboard, without uvicorn's own signal handling: the
    demo's StopRequest takes the signals (uvicorn would raise them again once it has shut
    down, cutting the demo's clean-up short)."""
    import uvicorn

    class DemoServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return DemoServer(uvicorn.Config(app, host="127.0.0.1", port=port,  # type: ignore[arg-type]
                                     log_level="warning", lifespan="on"))


async def _show(server: uvicorn.Server, plane: LiveState, console: Console,
                welcome: Callable[[], None]) -> None:
    """Once the server listens (never, when it cannot): the welcome, then the platform's state."""
    while not server.started:
        await asyncio.sleep(0.05)
    welcome()
    await _display(plane, console)


async def _exit_on(stop: StopRequest, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True


def _fileno(stream: object) -> int:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return -1


def _welcome(console: Console, stack: DemoStack, port: int, token: str, checks: int) -> None:
    base = stack.base
    inventory = base / "opsplane.yaml"
    url = f"http://127.0.0.1:{port}"
    console.print(f"""
[bold]opsplane is running the demo shop and watching it[/] ({checks} checks every 5 s).
  dashboard  {url}/ui/   (sign in with the admin token)
  admin token (shown once): [bold]{token}[/]
  API        {url}/api/v1/health   (Authorization: Bearer <token>)
  shop       {stack.gateway_url}/api/products   (shoppers are already on it)
  inventory  {escape(str(inventory))}
""")
    console.print("Try, in another terminal (the first line makes the others work there):")
    for line in hints(stack, token):
        console.print(Text("  " + line))
    console.print(Text(f"Ctrl-C here, or `opsplane demo --stop --dir {shlex.quote(str(base))}` "
                       "in another terminal, stops everything.\n"))


def hints(stack: DemoStack, token: str) -> list[str]:
    """The commands the demo suggests, to be pasted into a fresh shell in that order: the
    first puts this installation's `opsplane` on PATH and points it at the demo."""
    setup = (f"export PATH={shlex.quote(str(bin_dir()))}:\"$PATH\" "
             f"OPSPLANE_CONFIG={shlex.quote(str(stack.inventory_path))} "
             f"OPSPLANE_DATABASE_URL={shlex.quote(stack.store_url)}")
    return [
        setup,
        "opsplane ps; opsplane stats; opsplane health --detailed",
        "opsplane logs orders --since 5m; opsplane logs --errors",
        "opsplane scale catalog 3; opsplane events --kind 'runtime.*'",
        "opsplane oncall now; opsplane oncall schedule; opsplane notify test console --wait 30s",
        "opsplane incident list --open; opsplane alerts",
        "opsplane backup status; opsplane backup list",
        f"OPSPLANE_TOKEN={token} opsplane query 'sum by (service) (rate(http_requests_total[1m]))'",
    ]


def bin_dir() -> Path:
    """The directory holding the `opsplane` command of this installation: the virtual
    environment's bin beside the running Python, else wherever PATH finds one."""
    import shutil

    beside = Path(sys.executable).parent
    if (beside / "opsplane").exists():
        return beside
    found = shutil.which("opsplane")
    return Path(found).parent if found else beside


async def _display(plane: LiveState, console: Console) -> None:
    from opsplane.health.report import as_table
    from opsplane.health.status import assess

    def render() -> Group:
        statuses = assess(plane.inventory, plane.latest)
        lines = [Text(s.headline, style="red") for s in statuses if s.checked and s.impacted]
        return Group(as_table(statuses, title="demo-shop · development"), *lines)

    if not console.is_terminal:
        # Logs and CI: print each change of a component's state on its own line.
        seen: dict[str, str] = {}
        while True:
            await asyncio.sleep(1)
            for s in assess(plane.inventory, plane.latest):  # type: ignore[attr-defined]
                if s.checked and seen.get(s.name) != s.state.value:
                    seen[s.name] = s.state.value
                    console.print(Text(s.headline))
    with Live(console=console, auto_refresh=False) as live:
        while True:
            await asyncio.sleep(1)
            live.update(render(), refresh=True)


async def _stage_outages(stack: DemoStack, console: Console, first: float = 45.0) -> None:
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
                console.print(f"[yellow]demo: could not reach {service} to set a fault: "
                              f"{escape(str(exc))}[/]")

    await asyncio.sleep(first)
    console.print("[yellow]demo: payments starts failing 30 % of charges for 60 s; orders depends on it.[/]")
    await faults("payments", {"error_ratio": {"/charges": 0.3}})
    await asyncio.sleep(60)
    console.print("[green]demo: payments recovers.[/]")
    await faults("payments", None)
    await asyncio.sleep(30)
    console.print("[yellow]demo: catalog crashes; the runtime restarts it (see `opsplane events`).[/]")
    await faults("catalog", {"crash": {"after_requests": 0, "exit_code": 1}})


async def _stop_after(stop: StopRequest, seconds: float) -> None:
    await asyncio.sleep(seconds)
    stop.set(f"--duration {seconds:g} s elapsed")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
