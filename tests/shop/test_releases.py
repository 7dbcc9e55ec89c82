"""The releases SHOP_VERSION selects, as a deploy meets them: services started as processes
(in-process only where nothing but the middleware is at stake), each release checked for the
one way it departs from a good release, and every answer and request series naming the
release that answered."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from fastapi import APIRouter
from typer.testing import CliRunner

from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from shop import SERVICES
from shop.__main__ import main as shop_main
from shop.cli import app as shop_cli
from shop.db import MIGRATIONS, MigrationFailed, create_engine, ensure_schema, migrate
from shop.httpclient import Origin
from shop.releases import CRASH_EXIT_CODE, RELEASES, ReleaseBehaviour, get_by_name
from shop.server import spec_for
from shop.service import ServiceSpec, ShopRuntime, build_app
from shop.settings import ShopConfigError, load_settings, sqlalchemy_url
from tests.shop.shopstack import REPO, ShopProcess, scrape, spawn, value, wait_ready

SEED = 7
CHARGE = json.dumps({"order_id": "o-1", "amount_cents": 1999}).encode()
JSON = {"content-type": "application/json"}
_databases = (f"shop_release_{i}" for i in itertools.count())


def start(name: str, release: str, log_dir: Path, **env: str) -> ShopProcess:
    """`python -m shop NAME` under `release` on a free port, not waited for."""
    return spawn(name, free_port(), {"SHOP_VERSION": release, "SHOP_SEED": str(SEED),
                                     "SHOP_PAYMENT_SUCCESS_RATE": "1", "SHOP_PAYMENT_ERROR_RATE": "0", **env},
                 log_dir)


def started(*processes: ShopProcess) -> list[ShopProcess]:
    try:
        wait_ready(processes)
    except BaseException:
        for process in processes:
            process.stop()
        raise
    return list(processes)


@pytest.fixture(scope="module")
def payments_by_release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ShopProcess]]:
    """A payments service under each of v2, v2-slow and v2-jitter, seeded alike."""
    log_dir = tmp_path_factory.mktemp("release-logs")
    releases = ("v2", "v2-slow", "v2-jitter")
    processes = started(*(start("payments", release, log_dir) for release in releases))
    yield dict(zip(releases, processes, strict=True))
    for process in processes:
        process.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database, as SHOP_DATABASE_URL takes it."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shop.db"
    cluster: TemporaryPostgres = request.getfixturevalue("postgres_cluster")
    name = next(_databases)
    cluster.execute(f'CREATE DATABASE "{name}"')
    return cluster.url(name)


def order_columns(url: str) -> set[str]:
    engine = create_engine(sqlalchemy_url(url), pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            return {column["name"] for column in sa.inspect(conn).get_columns("orders")}
    finally:
        engine.dispose()


def timed_get(url: str) -> float:
    began = time.perf_counter()
    assert httpx.get(url, timeout=5).status_code in (200, 404)
    return time.perf_counter() - began


def timed_charge(url: str) -> float:
    began = time.perf_counter()
    answer = httpx.post(url + "/charges", content=CHARGE, headers=JSON, timeout=5)
    assert answer.status_code == 201
    return time.perf_counter() - began


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- which releases there are -----------------------------------------------------------------


def test_the_releases_command_lists_every_release_with_what_it_does(
        capsys: pytest.CaptureFixture[str]) -> None:
    as_json = subprocess.run([sys.executable, "-m", "shop", "releases", "--json"], cwd=REPO,  # noqa: S603
                             capture_output=True, text=True, timeout=30, check=True)
    assert shop_main(["releases"]) == 0
    lines = capsys.readouterr().out.splitlines()
    mounted = CliRunner().invoke(shop_cli, ["releases"])

    assert json.loads(as_json.stdout) == [{"name": name, "description": text}
                                          for name, text in RELEASES.items()]
    assert [line.split()[0] for line in lines] == list(RELEASES)
    assert all(RELEASES[line.split()[0]] in line for line in lines)
    assert mounted.exit_code == 0 and mounted.output.splitlines() == lines
    assert {"v1", "v2", "v2-bad", "v2-slow", "v2-jitter", "v2-crash", "v2-migration",
            "v2-migration-fail"} == set(RELEASES)


def test_an_unknown_release_is_refused_at_start_naming_the_known_ones(tmp_path: Path) -> None:
    process = start("payments", "v3", tmp_path)

    assert process.process.wait(30) == ShopConfigError.exit_code
    said = process.log_path.read_text()
    assert "SHOP_VERSION='v3' is not a known release" in said
    assert all(name in said for name in RELEASES)
    with pytest.raises(ShopConfigError, match="SHOP_VERSION='v2-good'"):
        load_settings({"SHOP_VERSION": "v2-good"})
    assert load_settings({}).version == "v1"


# --- every answer and every request series names its release -----------------------------------


def test_every_answer_names_the_release_that_gave_it(payments_by_release: dict[str, ShopProcess]) -> None:
    url = payments_by_release["v2"].url
    answers = [
        httpx.post(url + "/charges", content=CHARGE, headers=JSON),  # 201
        httpx.post(url + "/charges", json={"amount_cents": -1}),  # 422
        httpx.get(url + "/no/such/path"),  # 404
        httpx.get(url + "/admin/faults"),  # 403: no admin token configured
        httpx.get(url + "/health"), httpx.get(url + "/metrics"), httpx.get(url + "/version"),
    ]

    assert [a.status_code for a in answers] == [201, 422, 404, 403, 200, 200, 200]
    assert {a.headers.get("x-version") for a in answers} == {"v2"}


async def test_failed_answers_name_the_release_too() -> None:
    def routes(_runtime: ShopRuntime) -> APIRouter:
        router = APIRouter()

        @router.get("/boom")
        async def boom() -> None:
            raise RuntimeError("broken on purpose")

        @router.get("/faulted")
        async def faulted() -> dict[str, str]:
            return {}

        return router

    settings = load_settings({"SHOP_VERSION": "v2-jitter", "SHOP_FAULTS": '{"error_ratio": {"/faulted": 1}}'})
    app = build_app(ServiceSpec("widgets", routes), settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://widgets") as client:
            unhandled, injected = await client.get("/boom"), await client.get("/faulted")

    assert (unhandled.status_code, injected.status_code) == (500, 500)
    assert unhandled.headers["x-version"] == injected.headers["x-version"] == "v2-jitter"


def test_request_series_carry_the_release_as_their_version_label(
        payments_by_release: dict[str, ShopProcess]) -> None:
    url = payments_by_release["v2-jitter"].url
    httpx.post(url + "/charges", content=CHARGE, headers=JSON)
    samples = scrape(url)

    request_series = [dict(labels) for name, labels in samples
                      if name == "http_requests_total" or name.startswith("http_request_duration_seconds")]
    assert request_series
    assert all(labels["version"] == "v2-jitter" for labels in request_series)
    # the labels that were there before the release label are all still there
    assert value(samples, "http_requests_total", service="payments", route="/charges", method="POST",
                 status="201", version="v2-jitter") >= 1
    assert value(samples, "http_request_duration_seconds_count", service="payments", route="/charges",
                 method="POST", version="v2-jitter") >= 1


# --- what each release does to requests ---------------------------------------------------------


def test_each_service_names_its_main_route_and_checkout_for_the_releases() -> None:
    specs = {name: spec_for(name) for name in SERVICES}

    assert specs["catalog"].main_routes == ("/products",)
    assert specs["orders"].main_routes == ("/checkout",) and specs["orders"].checkout_route == "/checkout"
    assert specs["payments"].main_routes == ("/charges",)
    assert "/api/checkout" in specs["gateway"].main_routes and "/health" not in specs["gateway"].main_routes
    assert specs["gateway"].checkout_route == "/api/checkout"
    slow = ReleaseBehaviour(get_by_name("v2-slow"), main_routes=specs["catalog"].main_routes)
    assert slow.extra_delay("/products") == 0.3
    assert slow.extra_delay("/search") == slow.extra_delay("/products/{product_id}") == 0.0
    good = ReleaseBehaviour(get_by_name("v2"), main_routes=("/checkout",), checkout_route="/checkout")
    assert not any(good.fails("/checkout") or good.extra_delay("/checkout") for _ in range(1000))


async def test_v2_bad_fails_five_percent_of_checkouts_and_nothing_else(tmp_path: Path) -> None:
    checkouts = 300
    database = {"SHOP_DATABASE_URL": f"sqlite:///{tmp_path}/shop.db"}
    payments = start("payments", "v1", tmp_path)
    orders = start("orders", "v2-bad", tmp_path, SHOP_PAYMENTS_URL=payments.url, **database)
    started(payments, orders)
    origin = Origin(orders.url)
    limit = asyncio.Semaphore(8)

    async def check_out() -> tuple[int, str, str | None]:
        async with limit:
            cart = (await origin.request("POST", "/carts")).json()["id"]
            item = json.dumps({"product_id": 3, "quantity": 1}).encode()
            assert (await origin.request("POST", f"/carts/{cart}/items", content=item, headers=JSON)
                    ).status_code == 201
            answer = await origin.request("POST", "/checkout", content=json.dumps({"cart_id": cart}).encode(),
                                          headers=JSON)
            return answer.status_code, cart, answer.headers.get("x-version")

    try:
        results = await asyncio.gather(*(check_out() for _ in range(checkouts)))
        failed_cart = next(cart for status, cart, _ in results if status == 500)
        cart_after = (await origin.request("GET", f"/carts/{failed_cart}")).json()
        samples = scrape(orders.url)
    finally:
        origin.close()
        orders.stop()
        payments.stop()

    statuses = [status for status, _, _ in results]
    failed = statuses.count(500)
    assert set(statuses) == {201, 500}
    # The process draws once per checkout from a generator seeded by SHOP_SEED, so the count is
    # the one the same generator gives here; and that count is where a binomial draw would be.
    same_dice = ReleaseBehaviour(get_by_name("v2-bad"), checkout_route="/checkout", seed=SEED)
    assert failed == sum(same_dice.fails("/checkout") for _ in range(checkouts))
    spread = 3 * math.sqrt(checkouts * 0.05 * 0.95)
    assert abs(failed - checkouts * 0.05) <= spread, failed
    assert {header for _, _, header in results} == {"v2-bad"}
    assert cart_after["status"] == "open"  # a failed checkout leaves the cart to try again
    assert value(samples, "http_requests_total", route="/checkout", status="500", version="v2-bad") == failed
    assert value(samples, "http_requests_total", route="/carts", status="201") == checkouts
    assert value(samples, "http_requests_total", status="500") == failed


def test_v2_slow_adds_300_ms_to_the_main_route_and_nowhere_else(
        payments_by_release: dict[str, ShopProcess]) -> None:
    slow, good = payments_by_release["v2-slow"].url, payments_by_release["v2"].url
    timed_charge(slow)  # the first request of a process pays for its connection and imports
    timed_charge(good)

    # taken in turns, so that a busy moment of the machine weighs on both sides alike
    pairs = [(timed_charge(slow), timed_charge(good)) for _ in range(5)]
    main_route = [slow_seconds for slow_seconds, _ in pairs]
    baseline = min(good_seconds for _, good_seconds in pairs)
    elsewhere = [timed_get(slow + path) for path in ("/version", "/health", "/metrics", "/no/such/path")]

    assert min(main_route) >= 0.3, main_route
    assert min(main_route) - baseline >= 0.3 - 0.01, (main_route, baseline)
    assert max(elsewhere) < 0.25, elsewhere
    samples = scrape(slow)
    mean = (value(samples, "http_request_duration_seconds_sum", route="/charges", version="v2-slow")
            / value(samples, "http_request_duration_seconds_count", route="/charges", version="v2-slow"))
    assert mean >= 0.3


async def test_v2_jitter_keeps_the_median_of_v2_and_grows_its_tail(
        payments_by_release: dict[str, ShopProcess]) -> None:
    requests = 200
    origins = {release: Origin(payments_by_release[release].url) for release in ("v2", "v2-jitter")}
    latencies: dict[str, list[float]] = {release: [] for release in origins}

    async def charge(release: str) -> None:
        began = time.perf_counter()
        answer = await origins[release].request("POST", "/charges", content=CHARGE, headers=JSON)
        latencies[release].append(time.perf_counter() - began)
        assert answer.status_code == 201

    for origin in origins.values():  # connections open before the clock starts
        await origin.request("GET", "/version")
    jitter_samples = scrape(payments_by_release["v2-jitter"].url)
    drawn_before = value(jitter_samples, "http_requests_total", route="/charges")
    # Requests arrive at a steady rate whatever the answers take (an open model), both releases
    # side by side, so that slow answers do not hold back the ones behind them.
    tasks = []
    for _ in range(requests):
        tasks += [asyncio.create_task(charge(release)) for release in origins]
        await asyncio.sleep(0.01)
    try:
        await asyncio.gather(*tasks)
    finally:
        for origin in origins.values():
            origin.close()

    good, jittery = latencies["v2"], latencies["v2-jitter"]
    # The process draws once per charge from a generator seeded by SHOP_SEED; the same generator,
    # past the charges it answered before, says how many of these were slow.
    same_dice = ReleaseBehaviour(get_by_name("v2-jitter"), main_routes=("/charges",), seed=SEED)
    for _ in range(int(drawn_before)):
        same_dice.extra_delay("/charges")
    tails = sum(same_dice.extra_delay("/charges") > 0 for _ in range(requests))
    assert tails > 0.05 * requests  # a tenth in expectation, and more than the 5 % above p95
    assert sum(latency >= 0.4 for latency in jittery) == tails
    assert abs(statistics.median(jittery) - statistics.median(good)) < 0.02, (
        statistics.median(jittery), statistics.median(good))
    assert nearest_rank(good, 0.95) < 0.2
    assert nearest_rank(jittery, 0.95) >= 0.4


# --- releases that fail at start or later ---------------------------------------------------------


def test_v2_crash_answers_then_exits_non_zero_within_ten_seconds_of_start(tmp_path: Path) -> None:
    began = time.monotonic()
    process = start("payments", "v2-crash", tmp_path)
    try:
        wait_ready([process])
        answered = httpx.get(process.url + "/version", timeout=2).headers["x-version"]
        code = process.process.wait(max(0.1, 10 - (time.monotonic() - began)))
    finally:
        process.stop()
    lasted = time.monotonic() - began

    assert answered == "v2-crash"
    assert code == CRASH_EXIT_CODE != 0
    assert lasted < 10
    assert "release v2-crash: exiting with code 1" in process.log_path.read_text()


def test_v2_migration_applies_its_change_once_however_often_it_runs(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/shop.db", pool_size=1, max_overflow=0)
    ensure_schema(engine)
    migration = MIGRATIONS[get_by_name("v2-migration").migration or ""]

    applied = [migrate(engine, migration) for _ in range(2)]

    engine.dispose()
    assert applied == [True, False]


def test_v1_keeps_working_on_the_schema_v2_migration_changed(database_url: str, tmp_path: Path) -> None:
    database = {"SHOP_DATABASE_URL": database_url}
    payments = start("payments", "v1", tmp_path)
    migrating = start("orders", "v2-migration", tmp_path, SHOP_PAYMENTS_URL=payments.url, **database)
    running = started(payments, migrating)
    try:
        assert "gift_note" in order_columns(database_url)
        # a second start of the release finds the change made, and the old release runs beside it
        again = start("catalog", "v2-migration", tmp_path, **database)
        old = start("orders", "v1", tmp_path, SHOP_PAYMENTS_URL=payments.url, **database)
        running += started(again, old)
        with httpx.Client(base_url=old.url, timeout=10) as client:
            cart = client.post("/carts").json()["id"]
            client.post(f"/carts/{cart}/items", json={"product_id": 5, "quantity": 2})
            checkout = client.post("/checkout", json={"cart_id": cart})
            order_id = checkout.json()["order_id"]
            engine = create_engine(sqlalchemy_url(database_url), pool_size=1, max_overflow=0)
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE orders SET gift_note = 'happy birthday' WHERE id = :id"),
                             {"id": order_id})
            engine.dispose()
            order = client.get(f"/orders/{order_id}")
        migrating_cart = httpx.post(migrating.url + "/carts", timeout=10)
        listing = httpx.get(again.url + "/products", timeout=10)
    finally:
        for process in running:
            process.stop()

    assert checkout.status_code == 201 and checkout.headers["x-version"] == "v1"
    assert order.status_code == 200 and order.json()["status"] == "completed"
    assert "gift_note" not in order.json()  # v1 reads the columns it knows
    assert migrating_cart.status_code == 201 and listing.status_code == 200


def test_v2_migration_fail_says_why_in_one_line_and_exits_without_answering(
        database_url: str, tmp_path: Path) -> None:
    process = start("orders", "v2-migration-fail", tmp_path, SHOP_DATABASE_URL=database_url,
                    SHOP_LOG_LEVEL="INFO")

    code = process.process.wait(30)

    said = process.log_path.read_text().splitlines()
    errors = [line for line in said if " ERROR " in line]
    assert code == 1
    assert len(errors) == 1, said
    assert re.search(r"shop ERROR orders v2-migration-fail: migration order_coupon_index "
                     r"\(index orders by coupon_code\) failed: .*coupon_code.*; not starting$", errors[0])
    assert not any("ready" in line for line in said)
    with pytest.raises(httpx.ConnectError):
        httpx.get(process.url + "/version", timeout=1)
    assert "coupon_code" not in order_columns(database_url)
    with pytest.raises(MigrationFailed, match="coupon_code"):
        engine = create_engine(sqlalchemy_url(database_url), pool_size=1, max_overflow=0)
        try:
            migrate(engine, MIGRATIONS["order_coupon_index"])
        finally:
            engine.dispose()
