"""Fixtures shared by every test domain: free ports, stores on SQLite and on a real
PostgreSQL cluster that the tests start themselves."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.store import Store
from tests.support.passwords import PG_PASSWORD


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
