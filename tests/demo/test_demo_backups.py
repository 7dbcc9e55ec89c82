"""The demo's backup policies as its inventory writes them, without starting anything: the
archive_command PostgreSQL is started with is the one the backup engine of the written inventory
expects, secrets are files of their own, and PostgreSQL falls back to pg_dump when its account
cannot reach the demo's directory (test_demo.py runs the real thing)."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from opsplane.backup.factory import open_engine
from opsplane.backup.policy import apply, backup_problems
from opsplane.config.loader import load
from opsplane.demo import stack as demo_stack
from opsplane.demo.stack import DemoStack

pytestmark = pytest.mark.skipif(not (shutil.which("pgbackrest") and shutil.which("restic")),
                                reason="pgbackrest and restic are not installed (scripts/bootstrap.sh)")


def servers(tmp_path: Path) -> tuple[Any, Any, Any]:
    """Stand-ins for the demo's PostgreSQL, Redis and S3 store, as far as its inventory reads them."""
    data_dir = tmp_path / "pg" / "data"
    data_dir.mkdir(parents=True)
    postgres = SimpleNamespace(port=5433, user="postgres", password="pw", data_dir=data_dir,
                               socket_dir=tmp_path / "pg" / "sock", url=lambda db: f"postgresql:///{db}")
    redis = SimpleNamespace(port=6380, url="redis://127.0.0.1:6380/0")
    s3 = SimpleNamespace(endpoint="127.0.0.1:9443", ca_file=tmp_path / "s3" / "s3-cert.pem",
                         access_key="AKIAEXAMPLE", secret_key="secret")
    return postgres, redis, s3


def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, reachable: bool,
            offsite: bool = True) -> tuple[DemoStack, Any, dict[str, str]]:
    monkeypatch.setattr(demo_stack, "server_can_reach", lambda path: reachable)
    stack = DemoStack(tmp_path / "demo")
    (stack.base / "secrets").mkdir(parents=True)
    archiving = stack.archive_settings()
    stack.postgres, stack.redis, s3 = servers(tmp_path)
    stack.s3 = s3 if offsite else None
    return stack, load(stack.write_inventory(8089)), archiving


def test_postgres_archives_into_the_stanza_the_written_inventory_backs_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack, inv, archiving = written(tmp_path, monkeypatch, reachable=True)
    assert stack.pg_engine == "pgbackrest" and not stack.notes
    assert backup_problems(inv) == []
    policy = apply(inv, "postgres-main")
    assert policy.engine == "pgbackrest" and policy.repositories == ("local", "offsite")
    assert policy.kinds == {"full": "0 */6 * * *", "incr": "*/15 * * * *"}
    assert policy.settings.data_dir == str(stack.postgres.data_dir)
    assert policy.settings.socket_dir == str(stack.postgres.socket_dir)
    assert apply(inv, "redis").engine == "redis-rdb"
    assert inv.backup.repositories["offsite"].is_offsite

    engine: Any = open_engine(inv, policy, environ={}, base_dir=stack.base)
    assert archiving == engine.driver.archive_settings()
    assert engine.repositories[0].path == str(stack.base / "backups" / "postgres-main")
    for name in ("backup-key", "s3-access-key", "s3-secret-key"):
        assert stat.S_IMODE((stack.base / "secrets" / name).stat().st_mode) == 0o600
        assert str(stack.base / "secrets" / name) in stack.inventory_path.read_text()


def test_postgres_is_dumped_when_its_account_cannot_reach_the_demo_and_no_s3_means_no_offsite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack, inv, archiving = written(tmp_path, monkeypatch, reachable=False, offsite=False)
    assert archiving == {} and stack.pg_engine == "pg_dump"
    assert any("pg_dump" in note for note in stack.notes)
    assert backup_problems(inv) == []
    assert apply(inv, "postgres-main").engine == "pg_dump"
    assert list(inv.backup.repositories) == ["local"]


def test_no_backups_without_servers(tmp_path: Path) -> None:
    stack = DemoStack(tmp_path / "demo")
    (stack.base / "secrets").mkdir(parents=True)
    inv = load(stack.write_inventory(8089))
    assert inv.backup.policies == {}
    assert not (stack.base / "secrets" / "backup-key").exists()
