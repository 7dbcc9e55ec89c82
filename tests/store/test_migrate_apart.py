"""`Store.open_migrated_apart`, as `serve` opens its store: a new store is migrated by a child
process, so the caller never imports Alembic; a store the child cannot reach is a StoreError
naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opsplane.drivers.sandbox.ports import free_port
from opsplane.errors import StoreError
from opsplane.store import Store
from opsplane.store.db import HEAD_REVISION

OPEN = """
import sys
from opsplane.store import Store
store = Store.open_migrated_apart(sys.argv[1])
print(store.tables().count("events"), "alembic" in sys.modules)
"""


def test_a_new_store_is_migrated_without_alembic_in_the_caller(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", OPEN, url], cwd=root, capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.split() == ["1", "False"], run.stderr
    store = Store.open(url, migrate=False)
    assert store.current_revision() == HEAD_REVISION
    store.close()


def test_a_store_the_migration_cannot_reach_is_a_store_error() -> None:
    url = f"postgresql://opsplane:secret@127.0.0.1:{free_port()}/opsplane"
    with pytest.raises(StoreError) as caught:
        Store.open_migrated_apart(url)
    assert "cannot open the store at" in str(caught.value)
    assert "secret" not in str(caught.value)
