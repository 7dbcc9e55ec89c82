"""TCP probe: can a connection to host:port be opened, and how long does it take."""

from __future__ import annotations

import asyncio
import time

from opsplane.drivers.probes.base import ProbeFailed, format_elapsed
from opsplane.drivers.probes.resolve import Resolver, default_resolver
from opsplane.health.models import ProbeResult, State
from opsplane.health.targets import CheckTarget, host_port


class TcpProbe:
    """Opens one TCP connection and closes it at once; nothing is sent."""

    def __init__(self, host: str, port: int | None, *, resolver: Resolver | None = None) -> None:
        self.host = host
        self.port = port
        self.resolver = resolver or default_resolver()

    @property
    def address(self) -> str:
        return host_port(self.host, self.port)

    @property
    def secrets(self) -> tuple[str, ...]:
        return ()  # sends none

    @classmethod
    def for_target(cls, target: CheckTarget, *, resolver: Resolver | None = None) -> TcpProbe:
        return cls(target.host, target.port, resolver=resolver)

    async def probe(self) -> ProbeResult:
        """OK "port 5432 open in 1 ms" with `connect_ms`; connection errors propagate to
        run_probe, which names them ("refuses connections", "host unreachable")."""
        if self.port is None:
            raise ProbeFailed("no port to check: set port on the check or the component",
                              State.UNKNOWN)
        started = time.perf_counter()
        transport, connected = await self.resolver.connect(_Connected, self.host, self.port)
        elapsed = (connected.at or time.perf_counter()) - started
        transport.abort()  # nothing to say goodbye to; don't leave the socket lingering
        return ProbeResult(State.OK, f"port {self.port} open in {format_elapsed(elapsed)}",
                           elapsed, {"connect_ms": round(elapsed * 1000, 3)})


class _Connected(asyncio.Protocol):
    """Notes when the connection was made: this task may resume later than that."""

    at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.at = time.perf_counter()
