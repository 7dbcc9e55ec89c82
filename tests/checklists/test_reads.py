"""The store-backed reads of a `report` step against a real store: a backup policy that never
took a backup fails its item, the on-call handoff warns until a note is left and is ok after,
an open P3 incident warns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.demo.stack import ONCALL_YAML
from opsplane.incidents import service as incidents
from opsplane.oncall import service as oncall
from opsplane.runbooks.reads import ReadContext, read
from opsplane.store import Store

NOW = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)
INVENTORY = loads("""\
platform: {name: shop}
databases:
  shop-db: {port: 5432}
backup:
  encryption_key: env:BACKUP_KEY
  repositories: {local: {}}
  policies:
    shop-db: {data_dir: /var/lib/postgresql/15/main}
""" + ONCALL_YAML)


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ReadContext]:
    store = Store.open(f"sqlite:///{tmp_path}/o.db")
    yield ReadContext(INVENTORY, tmp_path, store, ManualClock(NOW), {})
    store.close()


def look(name: str, ctx: ReadContext) -> tuple[str, str]:
    found = read(SimpleNamespace(read=name, warn_at=None, fail_at=None, path="/"), ctx)
    return found.outcome, found.said


def test_a_policy_without_a_backup_fails_the_backup_item(ctx: ReadContext) -> None:
    outcome, said = look("backup.status", ctx)
    assert outcome == "failed" and said.startswith("shop-db: ")
    assert look("backup.archive", ctx) == ("ok", "shop-db: archive complete")


def test_the_handoff_warns_until_a_note_is_left(ctx: ReadContext) -> None:
    outcome, said = look("oncall.handoff", ctx)
    assert outcome == "warned" and "no handoff note in the last 24 h" in said and "Ana Silva" in said
    with ctx.store.session() as session:
        oncall.record_handoff(session, settings=INVENTORY.oncall, schedule="shop", note="orders is flaky",
                              actor="cli:ana", clock=ctx.clock)
    outcome, said = look("oncall.handoff", ctx)
    assert outcome == "ok" and "by cli:ana: orders is flaky" in said


def test_an_open_low_severity_incident_warns(ctx: ReadContext) -> None:
    assert look("incidents.open", ctx) == ("ok", "0 incidents open")
    with ctx.store.session() as session:
        incidents.create(session, title="Slow search", service="shop-db", severity="P3", actor="cli:ana",
                         now=NOW, settings=INVENTORY.incidents)
    outcome, said = look("incidents.open", ctx)
    assert outcome == "warned" and "INC-1 P3" in said
    assert look("alerts.firing", ctx) == ("ok", "0 alerts firing")
