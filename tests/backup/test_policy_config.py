"""The inventory's backup section: what a policy applies with its defaults filled in, and every
mistake reported with its line and field before anything runs."""

from __future__ import annotations

import re
import textwrap

import pytest

from opsplane.backup.policy import UnknownPolicy, apply
from opsplane.config.loader import loads
from opsplane.errors import ConfigError

BASE = """\
version: 1
platform: {name: shop}
databases:
  shop-db: {port: 5432}
caches:
  sessions: {port: 6379}
backup:
  encryption_key: env:BACKUP_KEY
  repositories:
    local: {path: /var/backups/shop}
    offsite:
      type: s3
      s3: {endpoint: "s3.example.net", bucket: shop-backups,
           access_key: env:S3_KEY, secret_key: env:S3_SECRET}
"""


def inventory(policies: str, base: str = BASE):  # type: ignore[no-untyped-def]
    return loads(base + textwrap.indent(textwrap.dedent(policies), "  "))


def problems(policies: str, base: str = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        inventory(policies, base)
    assert caught.value.exit_code == 3
    return str(caught.value)


def test_a_database_policy_takes_the_manuals_targets_and_every_repository() -> None:
    inv = inventory("""
        policies:
          shop-db: {data_dir: /var/lib/postgresql/15/main}
          sessions: {}
    """)
    db, cache = apply(inv, "shop-db"), apply(inv, "sessions")
    assert (db.engine, db.component, db.rpo, db.rto) == ("pgbackrest", "shop-db", 900.0, 1800.0)
    assert db.kinds == {"full": "0 1 * * 0", "diff": "0 1 * * 1-6", "incr": "30 * * * *"}
    assert db.repositories == ("local", "offsite")
    assert db.encryption_key == "env:BACKUP_KEY"
    assert (cache.engine, cache.rpo, cache.rto) == ("redis-rdb", 3600.0, 900.0)
    assert (db.verify, db.drill) == ("0 3 * * 0", "0 4 1 * *")
    assert db.retention.min_good == 2 and db.retention.recovery_window == 30 * 86400.0


def test_a_policy_may_set_its_own_schedule_targets_and_repositories() -> None:
    inv = inventory("""
        policies:
          uploads:
            engine: files
            paths: [/srv/uploads]
            schedule: "0 */6 * * *"
            repositories: [offsite]
            rpo: 6h
            retention: {daily: 14, min_good: 3}
    """)
    uploads = apply(inv, "uploads")
    assert (uploads.engine, uploads.component, uploads.kinds) == ("files", None, {"full": "0 */6 * * *"})
    assert uploads.repositories == ("offsite",) and uploads.rpo == 6 * 3600.0
    assert uploads.retention.daily == 14 and uploads.retention.min_good == 3


def test_an_unknown_policy_names_the_defined_ones() -> None:
    inv = inventory("policies:\n  shop-db: {data_dir: /d}\n")
    with pytest.raises(UnknownPolicy, match=r"no backup policy 'shop_db' \(did you mean 'shop-db'\?\)"):
        apply(inv, "shop_db")


@pytest.mark.parametrize(("policies", "expected"), [
    ("policies:\n  shop-db: {data_dir: /d, repositories: [locl]}\n",
     r"backup.policies.shop-db.repositories\[0\]: unknown repository 'locl' \(did you mean 'local'\?\)"),
    ("policies:\n  orders: {component: shop_db}\n",
     r"backup.policies.orders.component: unknown component 'shop_db' \(did you mean 'shop-db'\?\)"),
    ("policies:\n  sessions: {engine: pgbackrest, data_dir: /d}\n",
     r"backup.policies.sessions.engine: engine pgbackrest backs up one of databases; 'sessions' is a cache"),
    ("policies:\n  shop-db: {}\n",
     r"backup.policies.shop-db.data_dir: engine pgbackrest needs the cluster's data directory"),
    ("policies:\n  uploads: {engine: files}\n",
     r"backup.policies.uploads.paths: engine files needs the paths to save"),
    ("policies:\n  sessions: {schedule: {full: '0 * * * *', incr: '*/5 * * * *'}}\n",
     r"backup.policies.sessions.schedule: kinds of backup \(full, diff, incr\) are pgbackrest's"),
    ("policies:\n  shop-db: {data_dir: /d, schedule: {incr: '*/5 * * * *'}}\n",
     r"a full backup needs a schedule too"),
    ("policies:\n  shop-db: {data_dir: /d, schedule: 'every hour'}\n",
     r"backup.policies.shop-db.schedule"),
    ("policies:\n  misc: {}\n",
     r"backup.policies.misc.engine: say which engine backs this up"),
])
def test_a_mistake_in_a_policy_is_named_with_its_line_and_field(policies: str, expected: str) -> None:
    message = problems(policies)
    assert re.search(r"opsplane\.yaml:1[56]:\d+: ", message), message
    assert re.search(expected, message), message


def test_every_copy_needs_an_encryption_key() -> None:
    base = BASE.replace("  encryption_key: env:BACKUP_KEY\n", "")
    message = problems("policies:\n  sessions: {}\n", base)
    assert "backup.policies.sessions.encryption_key: every copy is encrypted at rest" in message


def test_a_key_written_into_the_file_is_refused_without_repeating_it() -> None:
    base = BASE.replace("env:BACKUP_KEY", "hunter2-literal-key")
    message = problems("policies:\n  sessions: {}\n", base)
    assert "backup.encryption_key" in message and "secret reference" in message
    assert "hunter2" not in message


def test_an_s3_repository_needs_its_bucket() -> None:
    base = BASE + "    broken: {type: s3}\n"
    message = problems("policies:\n  sessions: {}\n", base)
    assert "backup.repositories.broken" in message and "needs an `s3:` section" in message
