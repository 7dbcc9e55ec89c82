"""The metrics worker follows the runtime's state: each running instance of a proxied service
is scraped over HTTP from its own port, its scrape states are events named after the instance,
and the runtime's exit notice for any release of the service scrapes all its instances now."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from opsplane.clock import SystemClock
from opsplane.config.loader import loads
from opsplane.drivers.runtime.base import InstanceStatus, RuntimeNotice
from opsplane.events.service import get_all
from opsplane.metrics.promql import Matcher, is_stale
from opsplane.metrics.worker import MetricsWorker
from opsplane.store import Store
from opsplane.telemetry import ControlPlaneMetrics
from opsplane.workers import WorkerContext
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.polling import wait_for_async


class Notices:
    """The runtime boundary as a test double: the notices the test puts, in order."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[RuntimeNotice] = asyncio.Queue()

    async def watch(self) -> AsyncIterator[RuntimeNotice]:
        while True:
            yield await self.queue.get()

    def state(self, *instances: InstanceStatus) -> None:
        self.queue.put_nowait(RuntimeNotice("state", instances=instances))


def metrics(version: str) -> Reply:
    return Reply(body=("# TYPE http_requests_total counter\n"
                       f'http_requests_total{{code="200",version="{version}"}} 3\n').encode())


def running(service: str, index: int, port: int, state: str = "running") -> InstanceStatus:
    return InstanceStatus(service=service, instance=index, pid=None, port=port, state=state,
                          started_at=None, restarts=0)


@pytest.fixture
def servers() -> Iterator[list[LocalHttpServer]]:
    with (LocalHttpServer({"/metrics": metrics("v1")}) as first,
          LocalHttpServer({"/metrics": metrics("v1")}) as second,
          LocalHttpServer({"/metrics": metrics("v2")}) as canary):
        yield [first, second, canary]


def worker_for(tmp_path: Path, notices: Notices) -> MetricsWorker:
    inventory = loads("""
platform: {name: shop}
defaults: {interval: 1h, timeout: 2s}
proxies: {edge: {port: 8080}}
services:
  catalog: {port: 8101, metrics_path: /metrics, proxy: edge, run: {argv: [app, '{port}'], instances: 2}}
""")
    ctx = WorkerContext(inventory=inventory, store=Store.open(f"sqlite:///{tmp_path}/o.db"),
                        clock=SystemClock(), env="production", metrics=ControlPlaneMetrics(process=False),
                        runtime=notices)
    return MetricsWorker(ctx)


def up(worker: MetricsWorker) -> dict[str, list[float | str]]:
    assert worker.store is not None
    found = worker.store.select([Matcher("__name__", "=", "up"), Matcher("service", "=", "catalog")],
                                0, worker.ctx.clock.now().timestamp() + 1)
    return {dict(labels)["instance"]: ["stale" if is_stale(v) else v for _, v in samples]
            for labels, samples in found}


def scrape_events(worker: MetricsWorker) -> list[tuple[str, str | None, str | None]]:
    with worker.ctx.store.session() as session:
        return sorted((e.target or "", e.service, e.outcome) for e in get_all(session, kind="metrics.scrape"))


async def test_instances_are_scraped_from_the_runtimes_state_and_looked_at_on_an_exit(
        tmp_path: Path, servers: list[LocalHttpServer]) -> None:
    first, second, canary = servers
    notices = Notices()
    worker = worker_for(tmp_path, notices)
    await worker.start()
    try:
        # The hour's interval leaves the first slots to chance: the exit notice scrapes now.
        notices.state(running("catalog", 0, first.port), running("catalog", 1, second.port),
                      running("catalog@v2", 0, canary.port))
        await wait_for_async(lambda: len(worker.scraper.targets) == 3, "three instance targets")
        runs: list[Any] = worker.look_now({"catalog@v2"})
        assert len(runs) == 3
        await asyncio.gather(*runs)
        assert up(worker) == {f"127.0.0.1:{s.port}": [1.0] for s in servers}
        assert all(any(seen.path == "/metrics" for seen in s.seen) for s in servers)
        await wait_for_async(lambda: len(scrape_events(worker)) == 3, "an event per instance")
        assert scrape_events(worker) == [("catalog.0", "catalog", "ok"), ("catalog.1", "catalog", "ok"),
                                         ("catalog@v2.0", "catalog", "ok")]

        notices.state(running("catalog", 0, first.port), running("catalog", 1, second.port, state="stopped"),
                      running("catalog@v2", 0, canary.port))
        await wait_for_async(lambda: len(worker.scraper.targets) == 2, "catalog.1 no longer a target")
        assert up(worker)[f"127.0.0.1:{second.port}"] == [1.0, "stale"]
        assert [len(s.seen) for s in servers] == [1, 1, 1]
        assert len(worker.look_now({"catalog"})) == 2
        assert worker.health().errors == 0
    finally:
        await worker.stop()
