"""The demo's servers for database care: its PostgreSQL has pg_stat_statements loaded and
created in the shop's database, a PgBouncer stands between the shop and PostgreSQL (the shop's
database URL leads through it), its inventory has a pgbouncer check that passes, and
`demo --stop` from the record ends PgBouncer too. The shop itself is not started here."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from opsplane.config.loader import load
from opsplane.demo import records
from opsplane.demo.stack import DemoStack
from opsplane.drivers.probes import build_probe
from opsplane.health.models import State
from opsplane.health.targets import check_targets
from opsplane.maintenance import flows


@pytest.fixture
def stack(tmp_path: Path) -> DemoStack:
    demo = DemoStack(tmp_path / "demo", traffic=False, paging=False, host_check=False, proxy=False,
                     backups=False)
    yield demo
    demo.stop()


def test_the_demo_loads_statements_and_puts_pgbouncer_before_the_shop(stack: DemoStack) -> None:
    stack.start_servers()
    assert stack.postgres is not None and stack.pgbouncer is not None, stack.notes
    inventory = load(stack.write_inventory(api_port=1))
    url = (stack.base / "secrets" / "shop-database-url").read_text().strip()
    assert f"@127.0.0.1:{stack.pgbouncer.port}/shop" in url
    with psycopg.connect(url, prepare_threshold=None, autocommit=True) as conn:
        conn.execute("SELECT 1")
    with stack.pgbouncer.admin() as console:
        assert any(p["database"] == "shop" for p in console.show_pools())
    [target] = [t for t in check_targets(inventory) if t.type == "pgbouncer"]
    assert target.component == "postgres-main"
    result = asyncio.run(build_probe(target).probe())
    assert result.state is State.OK, result.reason
    report = flows.report_one(inventory, "postgres-main", {})
    assert report.body["statements"]["state"] == "loaded"
    assert "pgbouncer" in records.own(stack.base)


def test_stopping_from_the_record_ends_pgbouncer(stack: DemoStack) -> None:
    stack.start_servers()
    assert stack.pgbouncer is not None, stack.notes
    labels = [p.label for p in records.running(stack.base)]
    assert any(label.startswith("PgBouncer (pid ") for label in labels)
    report = records.stop(stack.base)
    assert any(label.startswith("PgBouncer") for label in report.stopped) and not report.left
