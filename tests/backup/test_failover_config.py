"""The inventory's backup.failover section: the plan it makes (old primary from the database,
secrets resolved, the steps in words) and every mistake named with its place in the file."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from opsplane.backup.failover_plan import UnknownFailover, failover_problems, plan
from opsplane.config.loader import loads
from opsplane.config.models import Inventory
from opsplane.errors import ConfigError, SecretError

BASE = """\
version: 1
platform: {name: shop}
databases:
  shop-db: {host: 10.0.0.5, port: 5432, user: app, database: shop, password: env:DB_PASSWORD}
  orders-db: {port: 5433}
backup:
  failover:
"""


def inventory(failover: str):  # type: ignore[no-untyped-def]
    return loads(BASE + textwrap.indent(textwrap.dedent(failover), "    "))


def test_the_plan_takes_the_old_primary_and_logins_from_the_database() -> None:
    inv = inventory("""
        shop-db:
          standby: {host: 10.0.0.6}
          pgbouncer: {config_file: /etc/pgbouncer/pgbouncer.ini, password: env:PGB_PASSWORD}
    """)
    chosen = plan(inv, "shop-db", environ={"DB_PASSWORD": "s3cret", "PGB_PASSWORD": "admin-pw"})
    assert (chosen.primary.address, chosen.standby.address) == ("10.0.0.5:5432", "10.0.0.6:5432")
    assert (chosen.standby.user, chosen.standby.password, chosen.standby.dbname) == ("app", "s3cret", "shop")
    assert chosen.pgbouncer is not None
    assert (chosen.pgbouncer.address, chosen.pgbouncer.entry, chosen.pgbouncer.password) == (
        "127.0.0.1:6432", "shop", "admin-pw")
    assert (chosen.settings.target, chosen.settings.catch_up, chosen.settings.fence.how) == (
        15.0, 10.0, "read-only")
    steps = chosen.steps()
    assert steps[1].startswith("PAUSE shop in PgBouncer 127.0.0.1:6432")
    assert "read-only" in steps[2] and "SELECT pg_promote()" in steps[4]
    assert steps[-2].startswith("RESUME shop")
    with pytest.raises(SecretError, match="DB_PASSWORD"):
        plan(inv, "shop-db", environ={})


def test_a_database_without_failover_settings_is_refused_with_the_configured_ones() -> None:
    inv = inventory("""
        shop-db: {standby: {host: 10.0.0.6}}
    """)
    with pytest.raises(UnknownFailover, match=r"no failover is configured for 'shop-bd' \(did you mean "
                                              r"'shop-db'\?\); configured: shop-db") as refused:
        plan(inv, "shop-bd", environ={})
    assert refused.value.exit_code == 3


def test_mistakes_are_named_with_their_place() -> None:
    text = """
        shop-dbb: {standby: {host: 10.0.0.6}}
        orders-db:
          standby: {host: 127.0.0.1, port: 5433, promote: pg_ctl}
          fence: {how: stop}
          catch_up: 20s
    """
    with pytest.raises(ConfigError) as caught:  # the loader reports each with its line
        inventory(text)
    assert "opsplane.yaml:9:15: backup.failover.shop-dbb: unknown database" in str(caught.value)
    inv = Inventory.model_validate(yaml.safe_load(BASE + textwrap.indent(textwrap.dedent(text), "    ")))
    found = dict(failover_problems(inv))
    assert found[("backup", "failover", "shop-dbb")].startswith("unknown database 'shop-dbb' (did you mean "
                                                                "'shop-db'?)")
    assert "is where the inventory says orders-db itself is" in found[("backup", "failover", "orders-db",
                                                                       "standby")]
    assert "data directory" in found[("backup", "failover", "orders-db", "standby", "data_dir")]
    assert "data directory" in found[("backup", "failover", "orders-db", "fence", "data_dir")]
    assert "leaves nothing of the target (15 s)" in found[("backup", "failover", "orders-db", "catch_up")]
    assert failover_problems(inventory("shop-db: {standby: {host: 10.0.0.6}}")) == []


def test_the_models_refuse_what_cannot_be_read() -> None:
    with pytest.raises(ConfigError, match="config_file"):
        inventory("""
            shop-db:
              standby: {host: 10.0.0.6}
              pgbouncer: {config_file: pgbouncer.ini}
        """)
    with pytest.raises(ConfigError, match="fence"):
        inventory("shop-db: {standby: {host: 10.0.0.6}, fence: {how: shutdown}}")
