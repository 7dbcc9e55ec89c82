"""The HAProxy driver against a real HAProxy: changes go through the runtime API into the same
process, backends keep their slots, and what it cannot do without a restart it refuses."""

from __future__ import annotations

import pytest

from opsplane.config.models import Proxy
from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.traffic import Backend, ProxyError, Route, TrafficDriver, open_traffic
from opsplane.drivers.traffic.haproxy import HaproxyTraffic
from tests.drivers.traffic.servers import Release, Running, Traffic

pytestmark = pytest.mark.slow


def route(port: int, *backends: Backend) -> Route:
    return Route("catalog", "127.0.0.1", port, backends)


def test_apply_changes_the_running_process_and_current_reads_the_weights_back(
        traffic: Traffic, running: Running, release: Release) -> None:
    v1, v2 = release("v1"), release("v2")
    port = free_port()
    driver = traffic("haproxy")
    proxy = running(driver, [route(port, v1.backend(1), v2.backend(0))])
    wanted = [route(port, v1.backend(19), v2.backend(1))]

    applied = driver.apply(wanted)

    assert applied.how == "runtime-api" and applied.engine == "haproxy"
    assert proxy.process is not None and proxy.process.poll() is None
    assert proxy.pid == _haproxy_pid(driver)
    assert driver.current() == wanted
    driver.apply([route(port, v1.backend(0), v2.backend(7))])
    assert [(b.name, b.weight) for b in driver.current()[0].backends] == [("app@v1", 0), ("app@v2", 7)]
    assert proxy.pid == _haproxy_pid(driver)


def test_backends_keep_their_slots_across_changes_and_drivers(
        traffic: Traffic, running: Running, release: Release) -> None:
    v1, v2, v3 = release("v1"), release("v2"), release("v3")
    port = free_port()
    driver = traffic("haproxy")
    running(driver, [route(port, v1.backend(1), v2.backend(1))])
    assert isinstance(driver, HaproxyTraffic)
    before = {(s.addr, s.port): s.name for s in driver._slots() if s.state != "maint"}

    another = open_traffic("edge", Proxy(engine="haproxy"), directory=driver.directory)
    another.apply([route(port, v2.backend(3), v3.backend(1))])

    after = {(s.addr, s.port): s.name for s in driver._slots() if s.state != "maint"}
    assert after[v2.host, v2.port] == before[v2.host, v2.port]
    assert (v1.host, v1.port) not in after
    split = driver.verify(route(port), requests=80)
    assert set(split.versions) == {"v2", "v3"} and split.share("v3") == pytest.approx(0.25, abs=0.05)


def test_a_route_the_running_haproxy_does_not_have_needs_a_restart(
        traffic: Traffic, running: Running, release: Release) -> None:
    v1, v2 = release("v1"), release("v2")
    port = free_port()
    driver = traffic("haproxy")
    running(driver, [route(port, v1.backend(1), v2.backend(0))])
    added = Route("orders", "127.0.0.1", free_port(), (v1.backend(1),))

    with pytest.raises(ProxyError, match="needs the proxy prepared and restarted"):
        driver.apply([route(port, v1.backend(0), v2.backend(1)), added])

    assert driver.verify(route(port), requests=20).versions == {"v1": 20}


def test_more_backends_than_slots_are_refused_before_any_change(
        tmp_path_factory: pytest.TempPathFactory, running: Running, release: Release) -> None:
    backends = [release(f"v{n}") for n in range(3)]
    port = free_port()
    directory = tmp_path_factory.mktemp("hap")
    driver = HaproxyTraffic("edge", Proxy(engine="haproxy"), directory=directory, slots=2)
    running(driver, [route(port, backends[0].backend(1, "a"))])

    with pytest.raises(ProxyError, match="2 slots; 3 backends do not fit"):
        driver.apply([route(port, *(b.backend(1, f"b{n}") for n, b in enumerate(backends)))])

    assert driver.verify(route(port), requests=10).versions == {"v0": 10}


def test_apply_to_a_haproxy_that_is_not_running_says_so(traffic: Traffic,
                                                        release: Release) -> None:
    v1 = release("v1")
    driver = traffic("haproxy")
    driver.prepare([route(free_port(), v1.backend(1))])

    with pytest.raises(ProxyError, match="HAProxy is not running"):
        driver.apply([route(free_port(), v1.backend(1))])


def _haproxy_pid(driver: TrafficDriver) -> int:
    assert isinstance(driver, HaproxyTraffic)
    info = driver._ask("show info")
    return int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("Pid:")))
