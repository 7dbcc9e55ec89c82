"""Which driver drives a proxy: nginx or HAProxy, by the inventory's `engine`."""

from __future__ import annotations

from pathlib import Path

from opsplane.config.models import Proxy
from opsplane.drivers.traffic.base import ProxyError, TrafficDriver
from opsplane.drivers.traffic.haproxy import HaproxyTraffic
from opsplane.drivers.traffic.nginx import NginxTraffic


def open_traffic(name: str, proxy: Proxy, *, directory: Path) -> TrafficDriver:
    """The driver for `proxy` (the inventory's entry `name`), its files under `directory`."""
    if not proxy.managed:
        raise ProxyError(f"proxy {name} is not managed by opsplane (managed: false); opsplane only "
                         "drives proxies it runs itself, with the configuration it writes")
    if proxy.engine == "nginx":
        return NginxTraffic(name, proxy, directory=directory)
    if proxy.engine == "haproxy":
        return HaproxyTraffic(name, proxy, directory=directory)
    raise ProxyError(f"proxy {name}: engine {proxy.engine!r} is not one opsplane drives; "
                     "expected nginx or haproxy")
