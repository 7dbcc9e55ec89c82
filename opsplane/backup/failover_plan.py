"""A failover as it applies: the inventory's `backup.failover.DATABASE` with the old primary's
address and logins taken from the database, secrets resolved, and the steps it will take; and
the load-time checks of that section.

`failover_problems` is pure (it reads the inventory, never the environment); loading the
inventory may call it, so this module imports no driver until a plan is made."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opsplane.backup.models import FailoverSettings
from opsplane.backup.policy import Problem
from opsplane.config.types import SecretRef
from opsplane.errors import UsageError

if TYPE_CHECKING:
    from opsplane.config.models import Database, Inventory
    from opsplane.drivers.backup.standby import Endpoint

DEFAULT_PORT = 5432


class UnknownFailover(UsageError):
    """The database has no failover settings, or is not a database."""


@dataclass(frozen=True)
class PgBouncerTarget:
    """The PgBouncer to pause and repoint, its password resolved."""

    host: str
    port: int
    admin_user: str
    password: str | None
    config_file: str
    entry: str  # the name in its [databases] section

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class FailoverPlan:
    """Everything `opsplane failover DATABASE` needs to know."""

    database: str
    primary: Endpoint
    standby: Endpoint
    pgbouncer: PgBouncerTarget | None
    settings: FailoverSettings

    def steps(self) -> list[str]:
        """What the failover will do, in order, in words."""
        fence, standby = self.settings.fence, self.settings.standby
        bouncer = self.pgbouncer
        steps = [f"check the standby {self.standby.address} (in recovery, streaming, how far behind), "
                 f"the old primary {self.primary.address}"
                 + (f" and PgBouncer {bouncer.address}" if bouncer else "")]
        if bouncer:
            steps.append(f"PAUSE {bouncer.entry} in PgBouncer {bouncer.address}: transactions in flight "
                         f"finish, new ones wait")
        steps.append(f"fence the old primary {self.primary.address}: " + (
            f"pg_ctl stop -m fast on {fence.data_dir}" if fence.how == "stop"
            else "read-only (ALTER SYSTEM SET default_transaction_read_only, reload, end its sessions)"))
        steps.append(f"wait up to {self.settings.catch_up:g} s for the standby to receive the old "
                     f"primary's last WAL")
        steps.append(f"promote the standby {self.standby.address}: " + (
            f"pg_ctl promote on {standby.data_dir}" if standby.promote == "pg_ctl"
            else "SELECT pg_promote()"))
        if bouncer:
            steps.append(f"point {bouncer.entry} at {self.standby.address} in {bouncer.config_file}, RELOAD")
            steps.append(f"RESUME {bouncer.entry}: the waiting clients go on, to the new primary")
        steps.append(f"record the failover and each step's time against the target of "
                     f"{self.settings.target:g} s")
        return steps

    def inventory_change(self) -> list[str]:
        """What the operator should change in the inventory after the failover (it is their file:
        opsplane does not rewrite it)."""
        new, old = self.standby, self.primary
        return [f"databases.{self.database}: host {new.host}, port {new.port} (it was {old.address})",
                f"backup.failover.{self.database}.standby: the old primary {old.address} once it is "
                f"rebuilt as a standby of {new.address}, or remove the section until there is a standby "
                f"again"]


def plan(inv: Inventory, database: str, *, environ: Mapping[str, str]) -> FailoverPlan:
    """The failover of `database`; UnknownFailover naming the configured ones otherwise.
    SecretError when a password reference cannot be resolved."""
    from opsplane.drivers.backup.standby import Endpoint

    configured = inv.backup.failover
    if database not in configured:
        raise UnknownFailover(f"no failover is configured for {database!r}{_suggest(database, configured)}; "
                              f"configured: {', '.join(configured) or 'none (add backup.failover.DATABASE)'}")
    settings = configured[database]
    component = inv.databases.get(database)
    if component is None:
        raise UnknownFailover(f"{database!r} is not in the inventory's databases")
    env = dict(environ)
    password = _secret(component.password, env)
    host, port = primary_address(inv, component)
    primary = Endpoint(host, port, user=component.user, password=password, dbname=component.database)
    standby = Endpoint(settings.standby.host, settings.standby.port, user=component.user, password=password,
                       dbname=component.database)
    bouncer = settings.pgbouncer
    target = None if bouncer is None else PgBouncerTarget(
        bouncer.host, bouncer.port, bouncer.admin_user, _secret(bouncer.password, env), bouncer.config_file,
        bouncer.database or component.database)
    return FailoverPlan(database, primary, standby, target, settings)


def primary_address(inv: Inventory, component: Database) -> tuple[str, int]:
    """Where the inventory says the database is, in the default environment."""
    env = inv.platform.default_environment
    override = component.environments.get(env)
    host = ((override.host if override else None) or component.host
            or (inv.environments[env].host if env in inv.environments else None) or "127.0.0.1")
    port = (override.port if override else None) or component.port or DEFAULT_PORT
    return host, port


def failover_problems(inv: Inventory) -> list[Problem]:
    """Failovers of unknown databases, standbys that are the primary itself, and what a fence
    or a promotion by pg_ctl needs but was not given; with their paths in the file."""
    problems: list[Problem] = []
    for name, settings in inv.backup.failover.items():
        at = ("backup", "failover", name)
        component = inv.databases.get(name)
        if component is None:
            problems.append((at, f"unknown database {name!r}{_suggest(name, inv.databases)}; a failover "
                             f"promotes the standby of one of databases"))
            continue
        standby = settings.standby
        if (standby.host, standby.port) == primary_address(inv, component):
            problems.append(((*at, "standby"), f"the standby {standby.host}:{standby.port} is where the "
                             f"inventory says {name} itself is: give the standby's address"))
        if standby.promote == "pg_ctl" and not standby.data_dir:
            problems.append(((*at, "standby", "data_dir"), "promote pg_ctl needs the standby's data "
                             "directory on this host (data_dir), or promote with pg_promote"))
        if settings.fence.how == "stop" and not settings.fence.data_dir:
            problems.append(((*at, "fence", "data_dir"), "fence stop needs the old primary's data "
                             "directory on this host (data_dir), or fence read-only"))
        if settings.catch_up >= settings.target:
            problems.append(((*at, "catch_up"), f"the catch-up wait ({settings.catch_up:g} s) leaves "
                             f"nothing of the target ({settings.target:g} s) for the other steps"))
    return problems


def _secret(reference: str | None, environ: dict[str, str]) -> str | None:
    return None if reference is None else SecretRef(reference).resolve(environ)


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
