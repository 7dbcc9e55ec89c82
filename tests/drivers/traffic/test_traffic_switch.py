"""Moving traffic between two releases through a real nginx and a real HAProxy: the split
asked for is the split answers show, and requests never fail while it moves."""

from __future__ import annotations

import time

import pytest

from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.traffic import Route, split_weights
from opsplane.drivers.traffic.verify import route_url
from tests.drivers.traffic.servers import Release, Running, SteadyLoad, Traffic, VersionedBackend

pytestmark = pytest.mark.slow


def canary_route(port: int, stable: VersionedBackend, candidate: VersionedBackend, percent: float) -> Route:
    stable_weight, candidate_weight = split_weights(percent, 1, 1)
    return Route("catalog", "127.0.0.1", port, (stable.backend(stable_weight, "catalog.0"),
                                                candidate.backend(candidate_weight, "catalog@v2")))


def test_a_canary_split_is_what_the_answers_show(engine: str, traffic: Traffic,
                                                 running: Running, release: Release) -> None:
    v1, v2 = release("v1"), release("v2")
    port = free_port()
    driver = traffic(engine)
    running(driver, [canary_route(port, v1, v2, 0)])

    before = driver.verify(canary_route(port, v1, v2, 0))
    assert before.versions == {"v1": 200}, before.describe()

    applied = driver.apply([canary_route(port, v1, v2, 5)])
    canary = driver.verify(applied.routes[0], requests=400)
    assert canary.failures == 0, canary.describe()
    assert canary.share("v2") == pytest.approx(0.05, abs=0.02), canary.describe()

    driver.apply([canary_route(port, v1, v2, 100)])
    after = driver.verify(canary_route(port, v1, v2, 100))
    assert after.versions == {"v2": 200}, after.describe()


def test_switching_under_load_and_stopping_the_old_release_fails_no_request(
        engine: str, traffic: Traffic, running: Running,
        release: Release) -> None:
    v1, v2 = release("v1"), release("v2")
    port = free_port()
    driver = traffic(engine)
    running(driver, [canary_route(port, v1, v2, 0)])

    with SteadyLoad(route_url(canary_route(port, v1, v2, 0)), rate=100) as load:
        time.sleep(1.0)
        driver.apply([canary_route(port, v1, v2, 100)])
        switched_at = time.monotonic()
        time.sleep(0.5)
        v1.stop()
        time.sleep(1.5)

    report = load.report
    assert report.rate >= 50, f"the load sent only {report.rate:.0f} requests/s"
    assert report.failures == [], f"{len(report.failures)} of {report.sent} failed: {report.failures[:5]}"
    assert report.versions["v1"] > 0
    assert report.releases_sent_after(switched_at) == {"v2"}
    if engine == "haproxy":
        assert report.retried == 0, "the runtime API closes no client connection; nothing needs resending"


def test_a_backend_that_stops_while_it_takes_traffic_fails_no_request(
        engine: str, traffic: Traffic, running: Running, release: Release) -> None:
    first, second = release("v1"), release("v1")
    port = free_port()
    driver = traffic(engine)
    both = Route("catalog", "127.0.0.1", port,
                 (first.backend(1, "catalog.0"), second.backend(1, "catalog.1")))
    running(driver, [both])

    with SteadyLoad(route_url(both), rate=100) as load:
        time.sleep(1.0)
        first.stop()
        stopped_at = time.monotonic()
        time.sleep(1.5)

    report = load.report
    assert report.failures == [], f"{len(report.failures)} of {report.sent} failed: {report.failures[:5]}"
    assert report.retried == 0, "the proxy, not the client, sends a request again when its backend went away"
    assert report.releases_sent_after(stopped_at) == {"v1"}
    assert second.served > 0 and first.served > 0
