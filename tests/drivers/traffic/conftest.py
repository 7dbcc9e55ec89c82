"""Fixtures of the traffic driver tests: backends that name their release, and the real proxy
of each engine started by its driver's run_argv; everything stopped after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opsplane.config.models import Proxy
from opsplane.drivers.traffic import Route, TrafficDriver, open_traffic
from tests.drivers.traffic.servers import RunningProxy, VersionedBackend


@pytest.fixture(params=["nginx", "haproxy"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def release() -> Iterator[Callable[[str], VersionedBackend]]:
    """Start one backend of a release: `release("v1")`."""
    started: list[VersionedBackend] = []

    def start(version: str) -> VersionedBackend:
        backend = VersionedBackend(version)
        started.append(backend)
        return backend

    yield start
    for backend in started:
        backend.stop()


@pytest.fixture
def traffic(tmp_path: Path) -> Callable[..., TrafficDriver]:
    """The driver of a managed proxy of `engine`, its files in tmp_path/ENGINE."""

    def make(engine: str, **fields: object) -> TrafficDriver:
        directory = tmp_path / engine
        directory.mkdir(exist_ok=True)
        return open_traffic("edge", Proxy.model_validate({"engine": engine, **fields}), directory=directory)

    return make


@pytest.fixture
def running() -> Iterator[Callable[[TrafficDriver, list[Route]], RunningProxy]]:
    """Prepare a driver's proxy with routes and run it as opsplane's runtime would."""
    started: list[RunningProxy] = []

    def run(driver: TrafficDriver, routes: list[Route]) -> RunningProxy:
        proxy = RunningProxy(driver, routes).__enter__()
        started.append(proxy)
        return proxy

    yield run
    for proxy in reversed(started):
        proxy.__exit__(None, None, None)
