"""Which requests go where: a proxy's routes computed from what the runtime runs and the share
each active deploy gives its new release, and applied to the proxy.

Every change of the instances behind a proxy goes through `sync`: `opsplane up` and `scale`
(a new instance gets requests, a stopped one none), and each deploy step that moves requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.config.models import Inventory, Proxy
from opsplane.drivers.runtime.base import InstanceStatus

Share = tuple[str, float, Sequence[int]]  # (the new release, its percent, own instances drained)


def track_name(service: str, version: str) -> str:
    """The runtime's name for the extra instances of `version` of `service`."""
    return f"{service}@{version}"


def proxy_directory(inventory: Inventory, name: str, proxy: Proxy, base_dir: Path) -> Path:
    """Where a proxy's configuration lives: its `config_dir`, else under the runtime's state dir."""
    if proxy.config_dir:
        return (base_dir / proxy.config_dir).resolve()
    return (base_dir / inventory.runtime.state_dir / "proxy" / name).resolve()


def open_proxy(inventory: Inventory, name: str, base_dir: Path) -> Any:
    from opsplane.drivers.traffic import open_traffic

    proxy = inventory.proxies[name]
    return open_traffic(name, proxy, directory=proxy_directory(inventory, name, proxy, base_dir))


def routes(inventory: Inventory, proxy_name: str, statuses: Sequence[InstanceStatus],
           shares: Mapping[str, Share]) -> list[Any]:
    """The proxy's routes: each service it fronts, listening on the service's port, with its own
    instances and any extra instances (`service@version`) as backends weighted by `shares`."""
    from opsplane.drivers.traffic import Backend, Route, split_weights

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
                            weight=0 if s.instance in drained else w_own, version=s.version or "")
                    for s in own]
        backends += [Backend(name=s.name, host="127.0.0.1", port=int(s.port or 0), weight=w_extra,
                             version=s.version or version) for s in extra]
        found.append(Route(service=name, listen_host=component.host or "127.0.0.1",
                           listen_port=component.port, backends=tuple(backends)))
    return found


def _serving(status: InstanceStatus) -> bool:
    return status.state in ("running", "starting")


def apply_proxy(inventory: Inventory, proxy_name: str, statuses: Sequence[InstanceStatus],
                shares: Mapping[str, Share], *, base_dir: Path) -> tuple[Any, list[Any]]:
    """Apply the routes of `proxy_name` to the running proxy; (its driver, the routes)."""
    driver = open_proxy(inventory, proxy_name, base_dir)
    wanted = routes(inventory, proxy_name, statuses, shares)
    driver.apply(wanted)
    return driver, wanted


def active_shares(session: Session) -> dict[str, Share]:
    """The share each deploy that is not finished gives its new release now."""
    from opsplane.deploy.tables import DeployRow

    rows = session.scalars(select(DeployRow).where(DeployRow.active_service.is_not(None)))
    return {row.service: (row.to_version, row.percent, ()) for row in rows}
