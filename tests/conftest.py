"""Fixtures shared by every test domain: free ports, stores on SQLite and on a real
PostgreSQL cluster that the tests start themselves."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest-xdist's workers are started with COLUMNS=80 and LINES=24, which every command a test
# runs would inherit; without them, output that is not a terminal is drawn 160 columns wide.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

from opsplane.drivers.sandbox.postgres import TemporaryPostgres  # noqa: E402
from opsplane.store import Store  # noqa: E402
from tests.support.passwords import PG_PASSWORD  # noqa: E402

# The shared shop stacks (one per worker, whichever test directory asks for them).
pytest_plugins = ["tests.shop.fixtures"]

# Tests that run the whole shop and wait on real time (alerts firing, canaries judged, demos):
# `scripts/test.sh` runs them one after another on one worker, beside the rest on the other, so
# that no two of them share the two cores while they measure latencies and count answers.
REAL_TIME = ("integration", "demo")
# Of those, the ones that wait for whole minutes to pass rather than measure anything against
# the clock (an SLO's minutes recorded, then its burn alert): they run on whichever worker is
# free, so that their waiting does not lengthen the real-time worker's queue.
MINUTE_WAITERS = ("test_slo_burn.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(item.config.rootpath).parts
        if (parts[:1] == ("tests",) and len(parts) > 2 and parts[1] in REAL_TIME
                and parts[-1] not in MINUTE_WAITERS):
            item.add_marker(pytest.mark.xdist_group("real-time"))


@pytest.fixture
def free_port() -> int:
    """A loopback port with nothing listening on it."""
    from opsplane.drivers.sandbox.ports import free_port as pick

    return pick()



@pytest.fixture(scope="session")
def postgres_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryPostgres]:
    """A private PostgreSQL cluster (initdb + pg_ctl) on a free loopback port; TCP logins need
    PG_PASSWORD, so every use exercises authentication."""
    with TemporaryPostgres(tmp_path_factory.mktemp("pg"), password=PG_PASSWORD) as cluster:
        yield cluster


_database_names = (f"store_{i}" for i in itertools.count())


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated store: a fresh SQLite file, or a fresh database in the test cluster."""
    if request.param == "sqlite":
        opened = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        name = next(_database_names)
        cluster.execute(f'CREATE DATABASE "{name}"')
        opened = Store.open(cluster.url(name))
    try:
        yield opened
    finally:
        opened.close()
