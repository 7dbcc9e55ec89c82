"""`opsplane query`: a PromQL expression over what `opsplane serve` has scraped."""

from __future__ import annotations

import os
import time
from typing import Any

import typer

from opsplane.cli_support import config_path, out, print_json
from opsplane.errors import OpsplaneError, UsageError


def query(
    ctx: typer.Context,
    expr: str = typer.Argument(..., help="A PromQL expression, e.g. 'sum by (service) (up)'."),
    range_: str = typer.Option(None, "--range", help="Evaluate over this long up to now (e.g. 1h)."),
    step: str = typer.Option("15s", "--step", help="Seconds between points with --range."),
    json_out: bool = typer.Option(False, "--json", help="Print the API's answer as JSON."),
    url: str = typer.Option(None, "--url", help="The control plane (default: the inventory's server)."),
) -> None:
    """Evaluate a PromQL expression on what `opsplane serve` scraped (token: OPSPLANE_TOKEN).

    EXPR is evaluated now, or with --range over that long up to now, one point per --step.
    """
    import httpx

    from opsplane.config.loader import load
    from opsplane.config.types import parse_duration

    token = os.environ.get("OPSPLANE_TOKEN")
    if not token:
        raise UsageError("set OPSPLANE_TOKEN to a viewer token (opsplane token create --role viewer)")
    if url is None:
        server = load(config_path(ctx)).server
        url = f"http://{server.listen_host}:{server.listen_port}"
    now = time.time()
    params: dict[str, str | float]
    if range_:
        try:
            span = parse_duration(range_)
        except ValueError as exc:
            raise UsageError(f"--range: {exc}") from None
        path, params = "/api/v1/query_range", {"query": expr, "start": now - span, "end": now, "step": step}
    else:
        path, params = "/api/v1/query", {"query": expr, "time": now}
    try:
        answer = httpx.get(url.rstrip("/") + path, params=params, timeout=30, trust_env=False,
                           headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise OpsplaneError(f"cannot reach the control plane at {url}: {exc}") from None
    body: dict[str, Any] = answer.json() if answer.headers.get("content-type", "").startswith(
        "application/json") else {"error": answer.text}
    if answer.status_code == 400:
        raise UsageError(f"query refused: {body.get('error')}")
    if answer.status_code != 200:
        raise OpsplaneError(f"the control plane answered {answer.status_code}: "
                            f"{body.get('error') or body.get('detail')}")
    if json_out:
        print_json(body)
        return
    _print(body["data"])


def _print(data: dict[str, Any]) -> None:
    kind, result = data["resultType"], data["result"]
    if kind in ("scalar", "string"):
        out.print(result[1])
        return
    if not result:
        out.print("no series")
        return
    for series in result:
        metric = series["metric"]
        name = metric.get("__name__", "")
        labels = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
        shown = f"{name}{{{labels}}}" if labels or not name else name
        if kind == "vector":
            out.print(f"{shown}  {series['value'][1]}", highlight=False)
        else:
            values = [v for _, v in series["values"]]
            out.print(f"{shown}  {len(values)} points, last {values[-1] if values else '-'}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("query")(query)
