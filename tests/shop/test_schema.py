"""Schema creation and seeding when several shop processes start at once on one database."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from shop.db import create_engine
from shop.products import PRODUCT_COUNT
from shop.settings import sqlalchemy_url
from tests.shop.shopstack import REPO

_names = (f"shop_schema_{i}" for i in itertools.count())
# Each process builds its own engine and creates the schema, as a starting service does.
_CREATE = "import sys; from shop.db import create_engine, ensure_schema; " \
          "ensure_schema(create_engine(sys.argv[1], pool_size=1, max_overflow=0))"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shop.db"
    cluster: TemporaryPostgres = request.getfixturevalue("postgres_cluster")
    name = next(_names)
    cluster.execute(f'CREATE DATABASE "{name}"')
    return sqlalchemy_url(cluster.url(name))


def test_processes_starting_together_create_the_schema_and_seed_the_catalog_once(database_url: str) -> None:
    starters = [subprocess.Popen([sys.executable, "-c", _CREATE, database_url], cwd=REPO,  # noqa: S603
                                 stderr=subprocess.PIPE) for _ in range(4)]
    results = [(p.wait(60), p.stderr.read().decode() if p.stderr else "") for p in starters]

    assert all(code == 0 for code, _ in results), results
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*), count(DISTINCT sku) FROM products")).one()
    engine.dispose()
    assert tuple(count) == (PRODUCT_COUNT, PRODUCT_COUNT)
