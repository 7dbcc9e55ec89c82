"""The nginx driver against a real nginx: a configuration nginx refuses changes nothing, and
what it applies is what `current` reports."""

from __future__ import annotations

import socket

import pytest

from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.traffic import Backend, ProxyConfigInvalid, ProxyError, Route
from tests.drivers.traffic.servers import Release, Running, Traffic

pytestmark = pytest.mark.slow


def route(port: int, *backends: Backend) -> Route:
    return Route("catalog", "127.0.0.1", port, backends)


def test_a_configuration_nginx_refuses_is_not_applied_and_the_split_stays(
        traffic: Traffic, running: Running, release: Release) -> None:
    v1, v2 = release("v1"), release("v2")
    port = free_port()
    driver = traffic("nginx")
    running(driver, [route(port, v1.backend(1), v2.backend(0))])
    in_use = (driver.directory / "nginx.conf").read_text()
    not_an_address = Backend("catalog@v2", "not:an:address", v2.port, 1, "v2")

    with pytest.raises(ProxyConfigInvalid) as refused:
        driver.apply([route(port, v1.backend(0), not_an_address)])

    assert "invalid IPv6 address" in refused.value.output
    assert "nginx -t refused" in str(refused.value) and "nginx.conf.rejected" in str(refused.value)
    assert (driver.directory / "nginx.conf").read_text() == in_use
    assert driver.current() == [route(port, v1.backend(1), v2.backend(0))]
    assert driver.verify(route(port), requests=50).versions == {"v1": 50}


def test_a_check_changes_nothing_and_reports_what_nginx_refuses(
        traffic: Traffic, running: Running, release: Release) -> None:
    v1, v2 = release("v1"), release("v2")
    port = free_port()
    driver = traffic("nginx")
    running(driver, [route(port, v1.backend(1))])
    before = sorted((p.name, p.read_bytes()) for p in driver.directory.iterdir()
                    if p.is_file() and p.name != "error.log")

    driver.check([route(port, v1.backend(1), v2.backend(1))])  # nginx takes it: nothing is written
    with pytest.raises(ProxyConfigInvalid, match="nginx -t refused"):
        driver.check([route(port, Backend("catalog@v2", "not:an:address", v2.port, 1, "v2"))])

    after = sorted((p.name, p.read_bytes()) for p in driver.directory.iterdir()
                   if p.is_file() and p.name not in ("nginx.conf.rejected", "error.log"))
    assert after == before
    assert driver.verify(route(port), requests=20).versions == {"v1": 20}


def test_a_reload_nginx_cannot_carry_out_puts_the_previous_file_back(
        traffic: Traffic, running: Running, release: Release) -> None:
    v1 = release("v1")
    port = free_port()
    driver = traffic("nginx")
    running(driver, [route(port, v1.backend(1))])
    in_use = (driver.directory / "nginx.conf").read_text()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        elsewhere = Route("orders", "127.0.0.1", taken.getsockname()[1], (v1.backend(1),))
        with pytest.raises(ProxyError, match="kept its previous configuration.*Address already in use"):
            driver.apply([route(port, v1.backend(1)), elsewhere])

    assert (driver.directory / "nginx.conf").read_text() == in_use
    assert driver.current() == [route(port, v1.backend(1))]
    assert driver.verify(route(port), requests=20).versions == {"v1": 20}


def test_current_is_what_was_last_applied(traffic: Traffic,
                                         running: Running, release: Release) -> None:
    v1, v2 = release("v1"), release("v2")
    port = free_port()
    driver = traffic("nginx")
    running(driver, [route(port, v1.backend(1))])
    wanted = [route(port, v1.backend(19), v2.backend(1))]

    applied = driver.apply(wanted)

    assert applied.how == "reload" and applied.engine == "nginx" and applied.seconds > 0
    assert driver.current() == wanted


def test_a_route_without_backends_answers_502_and_weight_0_takes_nothing(
        traffic: Traffic, running: Running, release: Release) -> None:
    v1, v2 = release("v1"), release("v2")
    port, empty_port = free_port(), free_port()
    driver = traffic("nginx")
    empty = Route("orders", "127.0.0.1", empty_port)
    running(driver, [route(port, v1.backend(0), v2.backend(3)), empty])

    assert driver.verify(route(port), requests=30).versions == {"v2": 30}
    nothing = driver.verify(empty, requests=3)
    assert nothing.failures == 3 and nothing.reasons == ("HTTP 502",)
    assert v1.served == 0


def test_the_proxy_answers_health_on_its_own_port(traffic: Traffic,
                                                  running: Running, release: Release) -> None:
    import httpx

    own_port = free_port()
    v1 = release("v1")
    driver = traffic("nginx", port=own_port)
    running(driver, [route(free_port(), v1.backend(1))])

    answer = httpx.get(f"http://127.0.0.1:{own_port}/health", trust_env=False)

    assert (answer.status_code, answer.text) == (200, "ok\n")


def test_apply_to_an_nginx_that_is_not_running_says_so(traffic: Traffic,
                                                       release: Release) -> None:
    v1 = release("v1")
    driver = traffic("nginx")
    driver.prepare([route(free_port(), v1.backend(1))])

    with pytest.raises(ProxyError, match="nginx is not running"):
        driver.apply([route(free_port(), v1.backend(1))])
