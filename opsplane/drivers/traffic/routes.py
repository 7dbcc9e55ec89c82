"""A proxy's routes from what the runtime runs: each service the proxy fronts, listening on the
service's port, with its own instances and any extra instances of another release
(`SERVICE@VERSION`) as weighted backends; and applying them to the running proxy.

`Share` says how a deploy splits a service's requests; with none, the service's own instances
share them equally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from opsplane.config.models import Inventory, Proxy
from opsplane.drivers.runtime.base import InstanceStatus
from opsplane.drivers.runtime.releases import track_name
from opsplane.drivers.traffic.base import Backend, Route, TrafficDriver, split_weights
from opsplane.drivers.traffic.factory import open_traffic

UNVERSIONED = "unversioned"  # the release of an instance whose service names none (no run.version)
Share = tuple[str, float, Sequence[int]]  # (the other release, its percent, own instances drained)


def managed_proxies(inventory: Inventory) -> dict[str, Proxy]:
    """The proxies opsplane runs itself and that front at least one service it runs."""
    fronting = {c.proxy for _, _, c in inventory.components() if c.proxy and c.run is not None}
    return {name: proxy for name, proxy in inventory.proxies.items() if proxy.managed and name in fronting}


def proxy_directory(inventory: Inventory, name: str, proxy: Proxy, base_dir: Path) -> Path:
    """Where a proxy's configuration lives: its `config_dir`, else under the runtime's state dir."""
    if proxy.config_dir:
        return (base_dir / proxy.config_dir).resolve()
    return (base_dir / inventory.runtime.state_dir / "proxy" / name).resolve()


def open_proxy(inventory: Inventory, name: str, base_dir: Path) -> TrafficDriver:
    proxy = inventory.proxies[name]
    return open_traffic(name, proxy, directory=proxy_directory(inventory, name, proxy, base_dir))


def routes(inventory: Inventory, proxy_name: str, statuses: Sequence[InstanceStatus],
           shares: Mapping[str, Share]) -> list[Route]:
    """The proxy's routes: each service it fronts, listening on the service's port, with its own
    instances and any extra instances (`service@version`) as backends weighted by `shares`."""
    found = []
    for _, name, component in inventory.components():
        if component.proxy != proxy_name or component.port is None:
            continue
        version, percent, drained = shares.get(name, ("", 0.0, ()))
        own = [s for s in statuses if s.service == name and s.port and _serving(s)]
        extra = [s for s in statuses if version and s.service == track_name(name, version) and s.port
                 and _serving(s)]
        live_own = [s for s in own if s.instance not in drained]
        if not extra:
            percent = 0.0
        if not live_own:
            percent = 100.0 if extra else 0.0
        w_own, w_extra = split_weights(percent, max(1, len(live_own)), max(1, len(extra)))
        backends = [Backend(name=s.name, host="127.0.0.1", port=int(s.port or 0),
                            weight=0 if s.instance in drained else w_own, version=s.version or UNVERSIONED)
                    for s in own]
        backends += [Backend(name=s.name, host="127.0.0.1", port=int(s.port or 0), weight=w_extra,
                             version=s.version or version) for s in extra]
        found.append(Route(service=name, listen_host=component.host or "127.0.0.1",
                           listen_port=component.port, backends=tuple(backends)))
    return found


def _serving(status: InstanceStatus) -> bool:
    return status.state in ("running", "starting")


def apply_proxy(inventory: Inventory, proxy_name: str, statuses: Sequence[InstanceStatus],
                shares: Mapping[str, Share], *, base_dir: Path) -> tuple[TrafficDriver, list[Route]]:
    """Apply the routes of `proxy_name` to the running proxy; (its driver, the routes)."""
    driver = open_proxy(inventory, proxy_name, base_dir)
    wanted = routes(inventory, proxy_name, statuses, shares)
    driver.apply(wanted)
    return driver, wanted


