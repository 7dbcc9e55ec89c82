"""From the inventory to concrete check targets: which check, against which address, how often."""

from __future__ import annotations

import shlex
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from opsplane.config.models import (
    Cache,
    CheckBase,
    CommandCheck,
    Component,
    Database,
    HostCheck,
    HttpCheck,
    Inventory,
    check_name,
)
from opsplane.config.types import SecretRef
from opsplane.errors import UsageError

_DEFAULT_PORTS = {"postgres": 5432, "redis": 6379, "tls": 443, "pgbouncer": 6432}


@dataclass(frozen=True, slots=True)
class CheckTarget:
    """One check of one component, resolved for one environment.

    Slotted, with its id built once: `serve` holds one per check and keys several tables by
    the id, so every copy of the string would be paid 10,000 times over.
    """

    component: str
    section: str
    name: str
    check: CheckBase
    host: str
    port: int | None
    url: str | None
    interval: float
    timeout: float
    database: str | None = None
    user: str | None = None
    password: SecretRef | None = None
    id: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", f"{self.component}/{self.name}")

    @property
    def type(self) -> str:
        return self.check.type  # type: ignore[attr-defined,no-any-return]

    @property
    def address(self) -> str:
        """What the check looks at, as a person would name it to go and look too: the URL,
        `host:port`, `postgresql://user@host:port/database`, `redis://host:port`, the command
        line, or this machine's disk path."""
        if self.url:
            return self.url
        check = self.check
        if isinstance(check, CommandCheck):
            return command_line(check.argv)
        if isinstance(check, HostCheck):
            return f"{socket.gethostname()}, disk {check.path}"
        kind = self.type
        if kind == "postgres":
            return postgres_address(self.host, self.port, self.user, self.database)
        if kind == "redis":
            return f"redis://{host_port(self.host, self.port)}"
        if kind == "pgbouncer":
            user = getattr(check, "admin_user", "pgbouncer")
            return f"pgbouncer://{user}@{host_port(self.host, self.port)}"
        return host_port(self.host, self.port)


def host_port(host: str, port: int | None) -> str:
    """`host:port` ('[::1]:5432' for an IPv6 address), or the host alone without a port."""
    return f"{_bracket(host)}:{port}" if port else host


def postgres_address(host: str, port: int | None, user: str | None, database: str | None) -> str:
    """The server and database as a connection URL without the password."""
    return f"postgresql://{user or 'postgres'}@{host_port(host, port or 5432)}/{database or 'postgres'}"


_COMMAND_CHARS = 60


def command_line(argv: Sequence[str]) -> str:
    """The command as it would be typed in a shell, on one line, cut to 60 characters."""
    text = " ".join(shlex.join(argv).split())
    return text if len(text) <= _COMMAND_CHARS else text[: _COMMAND_CHARS - 1] + "…"


def environment_name(inv: Inventory, env: str | None) -> str:
    name = env or inv.platform.default_environment
    if name not in inv.environments:
        raise UsageError(
            f"unknown environment {name!r}; the inventory defines {', '.join(inv.environments)}"
        )
    return name


def check_targets(
    inv: Inventory, env: str | None = None, *, only: set[str] | None = None
) -> list[CheckTarget]:
    """Every check of every component (or of the components named in `only`) in environment `env`."""
    env_name = environment_name(inv, env)
    known = {name for _, name, _ in inv.components()}
    if only:
        unknown = sorted(only - known)
        if unknown:
            raise UsageError(f"unknown service {', '.join(map(repr, unknown))}; "
                             f"the inventory defines {', '.join(sorted(known))}")
    targets: list[CheckTarget] = []
    for section, name, component in inv.components():
        if only and name not in only:
            continue
        for check in component.checks:
            targets.append(_resolve(inv, env_name, section, name, component, check))
    return targets


def _resolve(
    inv: Inventory, env: str, section: str, name: str, component: Component, check: CheckBase
) -> CheckTarget:
    override = component.environments.get(env)
    host = (
        check.host
        or (override.host if override else None)
        or component.host
        or inv.environments[env].host
        or "127.0.0.1"
    )
    kind: str = check.type  # type: ignore[attr-defined]
    port = check.port or (override.port if override else None) or component.port
    url = None
    if isinstance(check, HttpCheck):
        port = port or (443 if check.scheme == "https" else 80)
        if check.url:
            url = check.url
        else:
            base = (override.url if override else None) or component.url
            base = base or f"{check.scheme}://{_bracket(host)}:{port}"
            url = base.rstrip("/") + "/" + check.path.lstrip("/")
    else:
        port = port or _DEFAULT_PORTS.get(kind)
    extra: dict[str, object] = {}
    if isinstance(component, Database):
        extra = {"database": component.database, "user": component.user,
                 "password": component.password}
    elif isinstance(component, Cache):
        extra = {"password": component.password}
    return CheckTarget(
        component=name,
        section=section,
        name=check_name(check),
        check=check,
        host=host,
        port=port,
        url=url,
        interval=check.interval or inv.defaults.interval,
        timeout=check.timeout or inv.defaults.timeout,
        **extra,  # type: ignore[arg-type]
    )


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
