"""`shop` commands as a Typer app (`app`), for mounting as `opsplane shop ...`:
`serve SERVICE` runs one service, `traffic` drives shoppers against a gateway, `releases`
lists the releases SHOP_VERSION may name."""

from __future__ import annotations

import typer

from shop import SERVICES
from shop.settings import DEFAULT_PORTS, ShopConfigError
from shop.traffic import DEFAULT_CONCURRENCY, DEFAULT_LOGIN_SHARE, DEFAULT_THINK_TIME

app = typer.Typer(help="The reference shop: serve its services, send it traffic.", no_args_is_help=True)


@app.command()
def serve(
    service: str = typer.Argument(..., help=f"one of {', '.join(SERVICES)}"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(0, help="port; 0 means the service's default (8200-8203)"),
) -> None:
    """Serve one shop service (configured by SHOP_* environment variables)."""
    from shop.server import serve as run

    if service not in SERVICES:
        typer.echo(f"unknown service {service!r}: choose one of {', '.join(SERVICES)}", err=True)
        raise typer.Exit(3)
    try:
        code = run(service, host, port or DEFAULT_PORTS[service])
    except ShopConfigError as exc:
        typer.echo(f"shop {service}: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    raise typer.Exit(code)


@app.command()
def traffic(
    base_url: str = typer.Option("http://127.0.0.1:8200", help="the gateway's base URL"),
    rps: float = typer.Option(..., min=0.001, help="target requests per second"),
    duration: float = typer.Option(0.0, min=0.0, help="seconds; 0 runs until Ctrl-C"),
    think_time: float = typer.Option(DEFAULT_THINK_TIME, min=0.0,
                                     help="mean seconds between steps; 0 for benchmarks"),
    concurrency: int = typer.Option(DEFAULT_CONCURRENCY, min=1, help="sessions at most at once"),
    seed: int | None = typer.Option(None, help="seed for a repeatable run"),
    mix: str = typer.Option("", help="session kinds and weights, e.g. browse=0.5,search=0.3,buy=0.2"),
    logins: float = typer.Option(DEFAULT_LOGIN_SHARE, min=0.0, max=1.0,
                                 help="share of sessions that sign in first"),
    json_output: bool = typer.Option(False, "--json", help="final report as JSON"),
) -> None:
    """Send shoppers to the gateway; live lines on stderr, the report on stdout (exit 1 below 99 % ok)."""
    from shop.traffic import parse_mix, run_cli

    try:
        weights = parse_mix(mix) if mix else None
    except ValueError as exc:
        typer.echo(f"--mix: {exc}", err=True)
        raise typer.Exit(3) from None
    code = run_cli(base_url, rps=rps, duration=duration, think_time=think_time, concurrency=concurrency,
                   seed=seed, as_json=json_output, mix=weights, logins=logins)
    raise typer.Exit(code)


@app.command()
def releases(
    json_output: bool = typer.Option(False, "--json", help="a JSON list of {name, description}"),
) -> None:
    """The releases SHOP_VERSION may name, one a line with what it does."""
    from shop.releases import describe_releases

    typer.echo(describe_releases(as_json=json_output))
