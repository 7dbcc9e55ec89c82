"""Probes: async checks of HTTP(S), TCP, PostgreSQL, Redis, TLS certificates, commands and
the host.

Each probe kind lives in its own module and is imported the first time a check of that kind
is built: an inventory of HTTP checks never loads psycopg or cryptography, which keeps a
large `serve` tens of megabytes smaller.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from opsplane.clock import Clock
from opsplane.config.types import SecretRef
from opsplane.drivers.probes.base import Probe, ProbeFailed, describe_failure, run_probe
from opsplane.errors import UsageError
from opsplane.health.targets import CheckTarget

if TYPE_CHECKING:
    from opsplane.drivers.probes.command import CommandProbe
    from opsplane.drivers.probes.host import HostProbe
    from opsplane.drivers.probes.http import HttpProbe
    from opsplane.drivers.probes.pgbouncer import PgBouncerProbe
    from opsplane.drivers.probes.postgres import PostgresProbe
    from opsplane.drivers.probes.redis import RedisProbe
    from opsplane.drivers.probes.resolve import Resolver
    from opsplane.drivers.probes.tcp import TcpProbe
    from opsplane.drivers.probes.tls import TlsProbe

Environ = Mapping[str, str] | None

# check type -> (module, probe class)
_KINDS: dict[str, tuple[str, str]] = {
    "http": ("http", "HttpProbe"),
    "tcp": ("tcp", "TcpProbe"),
    "postgres": ("postgres", "PostgresProbe"),
    "redis": ("redis", "RedisProbe"),
    "tls": ("tls", "TlsProbe"),
    "command": ("command", "CommandProbe"),
    "host": ("host", "HostProbe"),
    "pgbouncer": ("pgbouncer", "PgBouncerProbe"),
}
_CLASS_MODULES = {cls: module for module, cls in _KINDS.values()}


def _probe_class(check_type: str) -> Any:
    module, cls = _KINDS[check_type]
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def __getattr__(name: str) -> Any:
    """`from opsplane.drivers.probes import HttpProbe` still works; it loads that module."""
    module = _CLASS_MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def _secret(ref: SecretRef | None, environ: Environ) -> str | None:
    # resolve() only looks names up, so any mapping will do.
    return ref.resolve(cast(dict[str, str] | None, environ)) if ref is not None else None


def _http(target: CheckTarget, environ: Environ, clock: Clock | None,
          resolver: Resolver | None) -> Probe:
    token = _secret(cast(SecretRef | None, getattr(target.check, "bearer_token", None)), environ)
    return cast(Probe, _probe_class("http").for_target(target, bearer_token=token,
                                                       resolver=resolver))


def _command(target: CheckTarget, environ: Environ, clock: Clock | None,
             resolver: Resolver | None) -> Probe:
    secret_env = {name: _secret(cast(SecretRef, ref), environ)
                  for name, ref in getattr(target.check, "secret_env", {}).items()}
    return cast(Probe, _probe_class("command").for_target(target, environ=environ,
                                                          secret_env=secret_env))


_Builder = Callable[[CheckTarget, Environ, "Clock | None", "Resolver | None"], Probe]
_BUILDERS: dict[str, _Builder] = {
    "http": _http,
    "tcp": lambda target, environ, clock, resolver: _probe_class("tcp").for_target(
        target, resolver=resolver),
    "postgres": lambda target, environ, clock, resolver: _probe_class("postgres").for_target(
        target, password=_secret(target.password, environ), resolver=resolver),
    "redis": lambda target, environ, clock, resolver: _probe_class("redis").for_target(
        target, password=_secret(target.password, environ), resolver=resolver),
    "tls": lambda target, environ, clock, resolver: _probe_class("tls").for_target(
        target, clock=clock, resolver=resolver),
    "command": _command,
    "host": lambda target, environ, clock, resolver: _probe_class("host").for_target(target),
    "pgbouncer": lambda target, environ, clock, resolver: _probe_class("pgbouncer").for_target(
        target, password=_secret(cast(SecretRef | None, getattr(target.check, "password", None)), environ)),
}


def build_probe(
    target: CheckTarget,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    resolver: Resolver | None = None,
) -> Probe:
    """The probe for `target`; secrets are resolved here, from `environ` (default os.environ).

    Raises SecretError when a secret the check needs cannot be read. `environ` is also the
    base environment of command checks; `clock` gives TLS checks their "now"; `resolver` looks
    up the names of network checks (default: the process's, over the system's lookups).
    """
    builder = _BUILDERS.get(target.type)
    if builder is None:
        raise UsageError(f"{target.id}: no probe for check type {target.type!r}; "
                         f"known types: {', '.join(sorted(_BUILDERS))}")
    return builder(target, environ, clock, resolver)


__all__ = [
    "CommandProbe",
    "HostProbe",
    "HttpProbe",
    "PgBouncerProbe",
    "PostgresProbe",
    "Probe",
    "ProbeFailed",
    "RedisProbe",
    "TcpProbe",
    "TlsProbe",
    "build_probe",
    "describe_failure",
    "run_probe",
]
