"""Name lookups of network checks: on the resolver's threads, one per name at a time, and a
timeout while waiting for one says so."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from opsplane.drivers.probes import build_probe, run_probe
from opsplane.drivers.probes.resolve import AddressInfo, Resolver, system_lookup
from opsplane.health.models import State
from tests.support.factories import http_target, tcp_target
from tests.support.http_servers import LocalHttpServer


class CountingDns:
    """The system's lookups, counted; names under .slow.test hang for `hang` seconds first."""

    def __init__(self, hang: float = 2.0) -> None:
        self.hang = hang
        self.calls: list[str] = []
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, host: str) -> list[AddressInfo]:
        with self._lock:
            self.calls.append(host)
            self.threads.add(threading.current_thread().name)
        if host.endswith(".slow.test"):
            time.sleep(self.hang)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return system_lookup(host)


async def test_checks_of_a_hanging_name_share_one_lookup_and_say_it_timed_out() -> None:
    dns = CountingDns()
    resolver = Resolver(dns)
    target = tcp_target(5432, host="db.slow.test", timeout=0.3)
    results = await asyncio.gather(*(run_probe(build_probe(target, resolver=resolver), 0.3)
                                     for _ in range(20)))
    assert dns.calls == ["db.slow.test"]
    assert {(r.state, r.reason) for r in results} == {
        (State.CRITICAL, "name lookup for db.slow.test timed out after 300 ms — db.slow.test:5432")}


async def test_names_are_looked_up_on_the_resolvers_threads_and_addresses_never() -> None:
    dns = CountingDns()
    resolver = Resolver(dns)
    with LocalHttpServer() as server:
        by_name = await run_probe(build_probe(tcp_target(server.port, host="localhost"),
                                              resolver=resolver), 2)
        by_address = await run_probe(build_probe(tcp_target(server.port), resolver=resolver), 2)
        over_http = await run_probe(build_probe(http_target(f"http://localhost:{server.port}/"),
                                                resolver=resolver), 2)
    assert {by_name.state, by_address.state, over_http.state} == {State.OK}
    assert dns.calls == ["localhost", "localhost"]
    assert all(name.startswith("opsplane-lookup") for name in dns.threads)


async def test_a_name_that_does_not_resolve_says_so() -> None:
    result = await run_probe(build_probe(tcp_target(5432, host="db.invalid"),
                                         resolver=Resolver(lambda host: socket.getaddrinfo(
                                             "name.invalid", 0, flags=socket.AI_NUMERICHOST))), 2)
    assert result.state is State.CRITICAL
    assert result.reason.startswith("host name does not resolve (")
    assert result.reason.endswith(" — db.invalid:5432")
