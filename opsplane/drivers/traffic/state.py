"""What a traffic driver keeps beside the proxy's configuration: the routes it last gave the
proxy (as JSON), files replaced in one step, and one change at a time per directory."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opsplane.drivers.traffic.base import Backend, ProxyError, Route

ROUTES_FILE = "routes.json"


def routes_to_json(routes: Sequence[Route]) -> str:
    return json.dumps({"routes": [_route_dict(r) for r in routes]}, indent=2) + "\n"


def _route_dict(route: Route) -> dict[str, Any]:
    return {"service": route.service, "listen_host": route.listen_host, "listen_port": route.listen_port,
            "backends": [{"name": b.name, "host": b.host, "port": b.port, "weight": b.weight,
                          "version": b.version} for b in route.backends]}


def routes_from_json(text: str) -> list[Route]:
    data = json.loads(text)
    return [Route(service=r["service"], listen_host=r["listen_host"], listen_port=int(r["listen_port"]),
                  backends=tuple(Backend(name=b["name"], host=b["host"], port=int(b["port"]),
                                         weight=int(b["weight"]), version=b["version"])
                                 for b in r["backends"]))
            for r in data["routes"]]


def read_routes(directory: Path) -> list[Route] | None:
    """The routes recorded in `directory`, or None when none were."""
    path = directory / ROUTES_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return routes_from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ProxyError(f"{path} cannot be read ({exc}); prepare the proxy again") from exc


def write_routes(directory: Path, routes: Sequence[Route]) -> None:
    write_atomically(directory / ROUTES_FILE, routes_to_json(routes))


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a reader sees the old file or the new one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


@contextmanager
def one_change_at_a_time(directory: Path) -> Iterator[None]:
    """Hold the directory's change lock: two applies to one proxy, from any processes, run one
    after the other instead of interleaving their files and commands."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".change.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
