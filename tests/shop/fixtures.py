"""Running shops for the tests: a full stack on PostgreSQL and Redis shared by the session
(faults cleared after every test), and a lone payments service for fault tests. A plugin of
the root conftest, so that the shop tests and the capacity tests share one of each per worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.redis import TemporaryRedis
from tests.shop.shopstack import ADMIN_TOKEN, ShopStack, start_stack

SHOP_DATABASE = "shop_main"


@pytest.fixture(scope="session")
def shop_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryRedis]:
    with TemporaryRedis(tmp_path_factory.mktemp("shop-redis")) as server:
        yield server


@pytest.fixture(scope="session")
def shop_database(postgres_cluster: TemporaryPostgres) -> str:
    """The URL of a database of its own for the shared shop."""
    postgres_cluster.execute(f'CREATE DATABASE "{SHOP_DATABASE}"')
    return postgres_cluster.url(SHOP_DATABASE)


@pytest.fixture(scope="session")
def shop_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shop-logs")


@pytest.fixture(scope="session")
def running_shop(shop_database: str, shop_redis: TemporaryRedis, shop_logs: Path) -> Iterator[ShopStack]:
    """All four services against PostgreSQL and Redis; every payment succeeds."""
    stack = start_stack(("payments", "catalog", "orders", "gateway"), {
        "SHOP_DATABASE_URL": shop_database, "SHOP_REDIS_URL": shop_redis.url, "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHOP_PAYMENT_SUCCESS_RATE": "1", "SHOP_PAYMENT_ERROR_RATE": "0", "SHOP_SEED": "7",
        "SHOP_VERSION": "v2",
    }, shop_logs)
    yield stack
    stack.stop()


@pytest.fixture
def shop(running_shop: ShopStack) -> Iterator[ShopStack]:
    """The shared shop; whatever faults a test set are cleared after it."""
    yield running_shop
    running_shop.clear_faults()


@pytest.fixture(scope="session")
def running_payments(shop_logs: Path) -> Iterator[ShopStack]:
    """A payments service on its own (no dependencies), seeded, every charge approved."""
    stack = start_stack(("payments",), {
        "SHOP_ADMIN_TOKEN": ADMIN_TOKEN, "SHOP_PAYMENT_SUCCESS_RATE": "1", "SHOP_PAYMENT_ERROR_RATE": "0",
        "SHOP_SEED": "11",
    }, shop_logs)
    yield stack
    stack.stop()


@pytest.fixture
def payments(running_payments: ShopStack) -> Iterator[ShopStack]:
    yield running_payments
    running_payments.clear_faults()
