"""The `log.errors` read over real log files as the runtime's log writers write them: error lines
per service in the window before an injected now, warned from 10, and the end-of-day list's item."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.drivers.runtime.logfiles import RotatingLog, log_path
from opsplane.runbooks.reads import ReadContext, read
from opsplane.store import Store

NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
INVENTORY = loads("""\
platform: {name: shop}
services:
  api: {port: 8001, run: {argv: [api]}}
  web: {port: 8002, run: {argv: [web]}}
  docs: {port: 8003}
""")


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ReadContext]:
    logs = tmp_path / ".opsplane" / "run" / "logs"
    api = RotatingLog(log_path(logs, "api", 0), max_bytes=2048, backups=5)
    for n in range(3):  # yesterday's, outside the window
        api.write("stderr", f"ERROR stale failure {n}", NOW - timedelta(hours=30))
    for n in range(12):
        api.write("stderr", f"ERROR payment declined for order {1000 + n}", NOW - timedelta(hours=20 - n))
        api.write("stdout", "GET /products 200 errors=0", NOW - timedelta(hours=20 - n))
    api.close()
    web = RotatingLog(log_path(logs, "web", 0), max_bytes=2048, backups=5)
    web.write("stderr", "Traceback (most recent call last):", NOW - timedelta(hours=1))
    web.write("stderr", "ValueError: bad input", NOW - timedelta(hours=1))
    web.close()
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    yield ReadContext(INVENTORY, tmp_path, store, ManualClock(NOW), {})
    store.close()


def look(ctx: ReadContext, **given: float) -> tuple[str, str]:
    step = SimpleNamespace(read="log.errors", warn_at=None, fail_at=None, window=86400.0, path="/")
    for name, value in given.items():
        setattr(step, name, value)
    found = read(step, ctx)
    return found.outcome, found.said


def test_error_lines_of_the_last_day_are_counted_per_service_and_warn_from_ten(ctx: ReadContext) -> None:
    outcome, said = look(ctx)
    assert outcome == "warned"
    lines = said.splitlines()
    assert lines[0] == "14 error lines in the last 24 h"
    assert lines[1] == "api: 12 (most: 12x ERROR payment declined for order <n>)"
    assert lines[2].startswith("web: 2 (most: 1x ")
    assert look(ctx, warn_at=13)[0] == "ok"
    assert look(ctx, fail_at=12)[0] == "failed"
    assert look(ctx, window=2 * 86400.0)[1].startswith("17 error lines in the last 48 h")


def test_the_end_of_day_checklist_counts_log_errors(tmp_path: Path) -> None:
    from opsplane.checklists.loader import catalog

    steps = {s.id: s for s in catalog(INVENTORY, tmp_path)["end-of-day"].runbook.steps}
    assert (steps["log-errors"].kind, steps["log-errors"].read) == ("report", "log.errors")
