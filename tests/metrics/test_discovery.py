"""Scraping each instance of a service behind a proxy: the targets found in the runtime's state
(pure), and the scraper that follows them, its store marking the series of an instance that
stopped stale."""

from __future__ import annotations

import asyncio

import pytest

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.config.models import Inventory
from opsplane.drivers.runtime.base import InstanceStatus
from opsplane.health.models import State
from opsplane.metrics.promql import Matcher, is_stale
from opsplane.metrics.scrape import (
    MetricsScraper,
    ScrapeStatus,
    ScrapeTarget,
    instance_targets,
    scrape_targets,
    worst_instance_status,
)
from opsplane.metrics.store import SampleStore
from tests.support.polling import wait_for_async

RUN = "run: {argv: [app, '{port}'], instances: 2}"


def shop(catalog: str = f"{{port: 8101, metrics_path: /metrics, proxy: edge, {RUN}}}") -> Inventory:
    return loads(f"""
platform: {{name: shop}}
defaults: {{interval: 10s, timeout: 2s}}
proxies:
  edge: {{port: 8080, engine: nginx}}
services:
  catalog: {catalog}
  orders: {{port: 8102, metrics_path: /metrics, {RUN}}}
  search: {{port: 8103, proxy: edge, {RUN}}}
""")


def instance(service: str, index: int, port: int | None, state: str = "running") -> InstanceStatus:
    return InstanceStatus(service=service, instance=index, pid=1000 + index, port=port, state=state,
                          started_at=None, restarts=0)


# --- which targets (pure) -------------------------------------------------------------------


def test_a_proxied_component_that_opsplane_runs_is_scraped_per_instance_not_at_its_address() -> None:
    found = {t.component: t for t in scrape_targets(shop())}
    assert found["catalog"] == ScrapeTarget("catalog", "", 10.0, 2.0, per_instance=True)
    # without a proxy, or without metrics_path: as before
    assert found["orders"] == ScrapeTarget("orders", "http://127.0.0.1:8102/metrics", 10.0, 2.0)
    assert "search" not in found


def test_a_proxied_component_opsplane_does_not_run_is_scraped_at_its_address() -> None:
    found = scrape_targets(shop("{port: 8101, metrics_path: /metrics, proxy: edge}"))
    assert ScrapeTarget("catalog", "http://127.0.0.1:8101/metrics", 10.0, 2.0) in found


def test_each_running_instance_of_each_release_is_a_target_of_the_base_service() -> None:
    found = instance_targets(shop(), [
        instance("catalog", 0, 8101), instance("catalog", 1, 40001),
        instance("catalog@v2", 0, 40002), instance("catalog@v2", 1, 40003, state="starting"),
    ])
    assert [(t.key, t.component, t.url) for t in found] == [
        ("catalog.0", "catalog", "http://127.0.0.1:8101/metrics"),
        ("catalog.1", "catalog", "http://127.0.0.1:40001/metrics"),
        ("catalog@v2.0", "catalog", "http://127.0.0.1:40002/metrics"),
    ]
    assert all((t.interval, t.timeout, t.per_instance, t.problem) == (10.0, 2.0, False, None) for t in found)


@pytest.mark.parametrize("state", ["starting", "backoff", "failed", "stopped"])
def test_an_instance_that_does_not_run_is_no_target(state: str) -> None:
    assert instance_targets(shop(), [instance("catalog", 0, 8101, state=state)]) == []


def test_instances_of_components_scraped_at_their_address_or_not_at_all_are_no_targets() -> None:
    statuses = [instance("orders", 0, 8102), instance("search", 0, 8103), instance("gone", 0, 9000),
                instance("orders@v2", 0, 40010), instance("catalog", 1, None)]
    assert instance_targets(shop(), statuses) == []


def test_an_instance_is_scraped_on_the_components_host_at_its_metrics_path() -> None:
    inventory = shop(f"{{host: '::1', port: 8101, metrics_path: prom, proxy: edge, {RUN}}}")
    [found] = instance_targets(inventory, [instance("catalog", 3, 40004)])
    assert found.url == "http://[::1]:40004/prom"


def test_the_worst_instance_names_itself_in_the_components_scrape_state() -> None:
    at = ManualClock().now()
    worst = worst_instance_status({
        "catalog.0": ScrapeStatus(State.OK, "7 requests counted", at),
        "catalog.1": ScrapeStatus(State.CRITICAL, "connection refused", at),
        "catalog@v2.0": None,
    })
    assert worst == ScrapeStatus(State.CRITICAL, "catalog.1: connection refused", at)
    assert worst_instance_status({"catalog.0": None}) is None


# --- the scraper following the instances ----------------------------------------------------


def page(version: str, requests: int) -> str:
    return ("# TYPE http_requests_total counter\n"
            f'http_requests_total{{code="200",version="{version}"}} {requests}\n')


class Pages:
    """The fetch boundary as a plain function: the page of each port's /metrics on 127.0.0.1,
    or a refused connection."""

    def __init__(self, pages: dict[int, str]) -> None:
        self.pages = {f"http://127.0.0.1:{port}/metrics": text for port, text in pages.items()}
        self.fetched: list[str] = []

    async def __call__(self, url: str, timeout: float) -> tuple[int, str]:
        self.fetched.append(url)
        if url not in self.pages:
            raise ConnectionRefusedError(111, "Connection refused")
        return 200, self.pages[url]


def values(store: SampleStore, name: str, at: float,
           service: str = "catalog") -> dict[str, list[float | str]]:
    """Each `instance` label's values of metric `name` of `service` up to `at`, a stale marker
    as "stale"."""
    found = store.select([Matcher("__name__", "=", name), Matcher("service", "=", service)], 0, at)
    return {dict(labels)["instance"]: ["stale" if is_stale(value) else value for _, value in samples]
            for labels, samples in found}


def scraper_for(inventory: Inventory, fetch: Pages, clock: ManualClock, *,
                changes: list[str] | None = None) -> MetricsScraper:
    def changed(target: ScrapeTarget, status: ScrapeStatus) -> None:
        if changes is not None:
            changes.append(f"{target.key} {status.state.value}")

    return MetricsScraper(scrape_targets(inventory), clock=clock, fetch=fetch,
                          store=SampleStore(clock=clock), on_change=changed)


async def scrape_all(scraper: MetricsScraper) -> None:
    for target in scraper.targets:
        await scraper.scrape(target)


STATE = [instance("catalog", 0, 8101), instance("catalog", 1, 40001), instance("catalog@v2", 0, 40002)]


def test_each_instance_has_its_own_up_and_series_labelled_by_service_and_instance() -> None:
    clock = ManualClock()
    fetch = Pages({8101: page("v1", 5), 40001: page("v1", 7),
                   40002: page("v2", 2), 8102: page("v1", 1)})
    scraper = scraper_for(shop(), fetch, clock)
    assert scraper.components == {"orders"}  # no catalog instance known yet

    async def run() -> None:
        await scraper.replace_instances(instance_targets(shop(), STATE))
        await scrape_all(scraper)

    asyncio.run(run())
    assert scraper.store is not None
    now = clock.now().timestamp()
    assert values(scraper.store, "up", now) == {"127.0.0.1:8101": [1.0], "127.0.0.1:40001": [1.0],
                                                "127.0.0.1:40002": [1.0]}
    assert values(scraper.store, "up", now, service="orders") == {"127.0.0.1:8102": [1.0]}
    requests = scraper.store.select([Matcher("__name__", "=", "http_requests_total"),
                                     Matcher("service", "=", "catalog")], 0, now)
    assert sorted((dict(labels)["instance"], dict(labels)["version"], dict(labels)["job"])
                  for labels, _ in requests) == [("127.0.0.1:40001", "v1", "catalog"),
                                                 ("127.0.0.1:40002", "v2", "catalog"),
                                                 ("127.0.0.1:8101", "v1", "catalog")]
    assert scraper.components == {"orders", "catalog"}
    assert scraper.status("catalog@v2.0") == ScrapeStatus(State.OK, "2 requests counted", clock.now())
    assert scraper.status("orders") == ScrapeStatus(State.OK, "1 requests counted", clock.now())


def test_an_instance_that_stops_is_no_longer_scraped_and_its_series_go_stale() -> None:
    clock = ManualClock()
    fetch = Pages({8101: page("v1", 5), 40001: page("v1", 7),
                   40002: page("v2", 2)})
    scraper = scraper_for(shop(), fetch, clock)

    async def run() -> list[ScrapeTarget]:
        await scraper.replace_instances(instance_targets(shop(), STATE))
        await scrape_all(scraper)
        clock.advance(10)
        still = [STATE[0], STATE[2], instance("catalog", 1, 40001, state="backoff")]
        gone = await scraper.replace_instances(instance_targets(shop(), still))
        clock.advance(10)
        fetch.fetched.clear()
        await scrape_all(scraper)
        return gone

    gone = asyncio.run(run())
    assert [t.key for t in gone] == ["catalog.1"]
    assert "http://127.0.0.1:40001/metrics" not in fetch.fetched
    assert [t.key for t in scraper.targets] == ["orders", "catalog.0", "catalog@v2.0"]
    assert scraper.status("catalog.1") is None
    assert scraper.store is not None
    up = values(scraper.store, "up", clock.now().timestamp())
    assert up["127.0.0.1:40001"] == [1.0, "stale"]
    assert up["127.0.0.1:8101"] == [1.0, 1.0]
    requests = values(scraper.store, "http_requests_total", clock.now().timestamp())
    assert requests["127.0.0.1:40001"] == [7.0, "stale"]
    assert scraper.store.targets() == ["catalog.0", "catalog@v2.0", "orders"]


def test_an_instance_back_on_another_port_is_a_new_target_and_the_old_address_goes_stale() -> None:
    clock = ManualClock()
    fetch = Pages({40001: page("v1", 7), 40009: page("v1", 1)})
    scraper = scraper_for(shop(), fetch, clock)

    async def run() -> None:
        await scraper.replace_instances(instance_targets(shop(), [instance("catalog", 1, 40001)]))
        await scrape_all(scraper)
        clock.advance(10)
        await scraper.replace_instances(instance_targets(shop(), [instance("catalog", 1, 40009)]))
        await scrape_all(scraper)

    asyncio.run(run())
    assert scraper.store is not None
    assert values(scraper.store, "up", clock.now().timestamp()) == {"127.0.0.1:40001": [1.0, "stale"],
                                                                    "127.0.0.1:40009": [1.0]}


def test_a_scrape_under_way_when_its_instance_stops_is_not_kept() -> None:
    clock = ManualClock()
    release = asyncio.Event()

    class Slow(Pages):
        async def __call__(self, url: str, timeout: float) -> tuple[int, str]:
            await release.wait()
            return await super().__call__(url, timeout)

    fetch = Slow({40001: page("v1", 7)})
    seen: list[str] = []
    scraper = scraper_for(shop(), fetch, clock, changes=seen)

    async def run() -> ScrapeStatus:
        await scraper.replace_instances(instance_targets(shop(), [instance("catalog", 1, 40001)]))
        [target] = scraper.targets[1:]
        under_way = asyncio.create_task(scraper.scrape(target))
        await asyncio.sleep(0)
        await scraper.replace_instances([])
        release.set()
        return await under_way

    status = asyncio.run(run())
    assert status.state is State.OK  # what the fetch found, told to its caller only
    assert scraper.status("catalog.1") is None and scraper.status("catalog") is None
    assert seen == []
    assert scraper.store is not None
    assert scraper.store.targets() == []
    assert values(scraper.store, "up", clock.now().timestamp()) == {}


def test_new_instances_are_scraped_on_their_interval_while_the_scraper_runs() -> None:
    clock = ManualClock()
    inventory = loads(f"""
platform: {{name: shop}}
defaults: {{interval: 50ms, timeout: 1s}}
proxies: {{edge: {{port: 8080}}}}
services:
  catalog: {{port: 8101, metrics_path: /metrics, proxy: edge, {RUN}}}
""")
    fetch = Pages({40001: page("v1", 7), 40002: page("v2", 1)})
    scraper = scraper_for(inventory, fetch, clock)

    old, new = "http://127.0.0.1:40001/metrics", "http://127.0.0.1:40002/metrics"

    async def run() -> None:
        running = asyncio.create_task(scraper.run_forever())  # nothing to scrape yet: it waits
        await scraper.replace_instances(instance_targets(inventory, [instance("catalog", 1, 40001),
                                                                     instance("catalog@v2", 0, 40002)]))
        await wait_for_async(lambda: fetch.fetched.count(old) >= 2 and fetch.fetched.count(new) >= 2,
                             "both instances scraped twice")
        await scraper.replace_instances(instance_targets(inventory, [instance("catalog@v2", 0, 40002)]))
        fetch.fetched.clear()
        await wait_for_async(lambda: fetch.fetched.count(new) >= 3, "catalog@v2.0 scraped three more times")
        assert not running.done()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    asyncio.run(run())
    assert old not in fetch.fetched
    assert scraper.status("catalog@v2.0") is not None


def test_the_components_state_is_the_worst_of_its_instances() -> None:
    clock = ManualClock()
    fetch = Pages({8101: page("v1", 5)})
    scraper = scraper_for(shop(), fetch, clock)

    async def run() -> None:
        await scraper.replace_instances(instance_targets(shop(), STATE[:2]))
        await scrape_all(scraper)

    asyncio.run(run())
    found = scraper.status("catalog")
    assert found is not None and found.state is State.CRITICAL
    assert found.reason.startswith("catalog.1: ")
    assert scraper.status("catalog.0") == ScrapeStatus(State.OK, "5 requests counted", clock.now())
