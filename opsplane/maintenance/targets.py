"""From the inventory to what database care connects to: a `databases:` entry as a
`pgstats.Server` (its secret resolved), and the PgBouncers its `pgbouncer` checks name."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from opsplane.config.models import Database, Inventory, PgBouncerCheck
from opsplane.config.types import SecretRef
from opsplane.drivers.pgstats import Server
from opsplane.errors import UsageError

DEFAULT_PORT = 5432


def database_names(inv: Inventory) -> list[str]:
    return sorted(inv.databases)


def _address(inv: Inventory, component: Database) -> tuple[str, int]:
    env = inv.platform.default_environment
    override = component.environments.get(env)
    host = (
        (override.host if override else None)
        or component.host
        or (inv.environments[env].host if env in inv.environments else None)
        or "127.0.0.1"
    )
    port = (override.port if override else None) or component.port or DEFAULT_PORT
    return host, port


def server(inv: Inventory, name: str, environ: Mapping[str, str]) -> Server:
    """The inventory's database `name` as a Server; UsageError naming the known ones otherwise.
    SecretError when its password cannot be read."""
    component = inv.databases.get(name)
    if component is None:
        near = difflib.get_close_matches(name, inv.databases, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UsageError(
            f"no database {name!r} in the inventory{hint}; its databases: "
            f"{', '.join(database_names(inv)) or 'none'}"
        )
    host, port = _address(inv, component)
    password = SecretRef(component.password).resolve(dict(environ)) if component.password else None
    return Server(name, host, port, component.user, component.database, password)


@dataclass(frozen=True)
class Bouncer:
    """A PgBouncer in front of a database of the inventory, as its `pgbouncer` check names it."""

    database: str  # the inventory's database behind it
    host: str
    port: int
    admin_user: str
    password: str | None
    pool_database: str | None  # the PgBouncer database its check judges, None: every one

    @property
    def address(self) -> str:
        return f"pgbouncer://{self.admin_user}@{self.host}:{self.port}"


def bouncers(inv: Inventory, environ: Mapping[str, str], only: str | None = None) -> list[Bouncer]:
    """The PgBouncers of the `pgbouncer` checks on the inventory's databases (of `only`)."""
    if only is not None and only not in inv.databases:
        server(inv, only, environ)  # raises with the names
    found = []
    for name, component in sorted(inv.databases.items()):
        if only is not None and name != only:
            continue
        host, _ = _address(inv, component)
        for check in component.checks:
            if isinstance(check, PgBouncerCheck):
                password = SecretRef(check.password).resolve(dict(environ)) if check.password else None
                found.append(
                    Bouncer(
                        name,
                        check.host or host,
                        check.port or 6432,
                        check.admin_user,
                        password,
                        check.database,
                    )
                )
    return found
