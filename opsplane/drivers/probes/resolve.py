"""Name lookups for probes, on threads of their own, and connecting to what they found.

`getaddrinfo` blocks, and asyncio's `create_connection` runs it on the event loop's default
executor, which every `asyncio.to_thread` in the process shares: six checks of names whose
DNS never answered held all six threads of a 2-core machine for 5 s each time, so a healthy
check of `localhost` timed out and the store's writes waited. A timeout cancels the wait for a
lookup, never the thread doing it.

So probes connect through a `Resolver`:

- An address (`10.0.0.5`, `::1`) is never looked up.
- A name is looked up on the resolver's own threads (a pool of at most LOOKUP_THREADS, started
  as needed), never the default executor's, so a lookup that hangs holds none of the threads
  the rest of the process uses.
- One lookup per name at a time: every check of a name that is being looked up waits for that
  same lookup, so a name whose DNS hangs holds one thread, however many checks use it.
- A run that reaches its timeout while waiting for a lookup says so: "name lookup for
  db.internal timed out after 5 s" (`base.waiting_on`).

The lookup itself is a seam: `Resolver(lookup=...)` takes any blocking function of a host name
to `getaddrinfo` results (tests give one that hangs for some names).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar, cast

from opsplane.drivers.probes.base import waiting_on

AddressInfo = tuple[int, int, int, str, tuple[Any, ...]]
Lookup = Callable[[str], list[AddressInfo]]
LOOKUP_THREADS = 16

_P = TypeVar("_P", bound=asyncio.BaseProtocol)


def system_lookup(host: str) -> list[AddressInfo]:
    """The system's answer for `host` (/etc/hosts, DNS, ...), for TCP."""
    return cast(list[AddressInfo], socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM))


class Resolver:
    """Looks names up on threads of its own (one lookup per name at a time) and connects."""

    def __init__(self, lookup: Lookup = system_lookup, *, threads: int = LOOKUP_THREADS) -> None:
        self._lookup = lookup
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="opsplane-lookup")
        self._lock = threading.Lock()
        self._looking: dict[str, Future[list[AddressInfo]]] = {}

    async def addresses(self, host: str, port: int) -> list[AddressInfo]:
        """Where `host:port` can be reached, for TCP; raises socket.gaierror when the name
        does not resolve."""
        numeric = _numeric(host, port)
        if numeric is not None:
            return numeric
        with waiting_on(f"name lookup for {host}"):
            found = await _awaited(self._lookup_once(host))
        return [(family, kind, proto, name, (address[0], port, *address[2:]))
                for family, kind, proto, name, address in found]

    async def connect(
        self,
        protocol_factory: Callable[[], _P],
        host: str,
        port: int,
        *,
        ssl: Any = None,
        server_hostname: str | None = None,
    ) -> tuple[asyncio.Transport, _P]:
        """`loop.create_connection` to `host:port`, its name looked up here: each address in
        turn until one connects. Errors as create_connection raises them."""
        loop = asyncio.get_running_loop()
        errors: list[OSError] = []
        for family, _, _, _, address in await self.addresses(host, port):
            try:
                # An address, never a name: create_connection does not look anything up.
                return await loop.create_connection(
                    protocol_factory, address[0], port, family=family, ssl=ssl,
                    server_hostname=(server_hostname or host) if ssl else None)
            except OSError as exc:
                errors.append(exc)
        if not errors:
            raise OSError(f"{host} has no address")
        if len({str(exc) for exc in errors}) == 1:
            raise errors[0]
        raise OSError(f"Multiple exceptions: {', '.join(str(exc) for exc in errors)}")

    async def open_connection(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """`asyncio.open_connection`, through `connect`."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        transport, protocol = await self.connect(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), host, port)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    def _lookup_once(self, host: str) -> Future[list[AddressInfo]]:
        """The lookup of `host` under way, or a new one."""
        with self._lock:
            running = self._looking.get(host)
            if running is not None:
                return running
            started = self._threads.submit(self._lookup, host)
            self._looking[host] = started
        started.add_done_callback(lambda done: self._forget(host, done))
        return started

    def _forget(self, host: str, done: Future[list[AddressInfo]]) -> None:
        with self._lock:
            if self._looking.get(host) is done:
                del self._looking[host]


def _numeric(host: str, port: int) -> list[AddressInfo] | None:
    """`host` as an address, without any lookup; None when it is a name."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        return None
    return cast(list[AddressInfo], found)


async def _awaited(future: Future[list[AddressInfo]]) -> list[AddressInfo]:
    """Wait for a lookup shared with other checks: giving up on it (a timeout) leaves it
    running for the others, and its result is not delivered to a loop that has closed."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[list[AddressInfo]] = loop.create_future()

    def settle(done: Future[list[AddressInfo]]) -> None:
        if waiter.done():
            return
        error = done.exception()
        if error is not None:
            waiter.set_exception(error)
        else:
            waiter.set_result(done.result())

    def deliver(done: Future[list[AddressInfo]]) -> None:
        try:
            loop.call_soon_threadsafe(settle, done)
        except RuntimeError:  # that event loop has closed: nobody is waiting any more
            pass

    future.add_done_callback(deliver)
    return await waiter


_default: Resolver | None = None
_default_lock = threading.Lock()


def default_resolver() -> Resolver:
    """The process's resolver over the system's lookups, made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Resolver()
        return _default
