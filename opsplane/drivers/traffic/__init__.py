"""Traffic drivers: the proxy in front of a service (nginx or HAProxy), told which backends
take which share of its requests, behind one `TrafficDriver` interface."""

from opsplane.drivers.traffic.base import (
    Applied,
    Backend,
    ProxyConfigInvalid,
    ProxyError,
    Route,
    RouteInvalid,
    Split,
    TrafficDriver,
    split_weights,
)
from opsplane.drivers.traffic.factory import open_traffic

__all__ = [
    "Applied",
    "Backend",
    "ProxyConfigInvalid",
    "ProxyError",
    "Route",
    "RouteInvalid",
    "Split",
    "TrafficDriver",
    "open_traffic",
    "split_weights",
]
