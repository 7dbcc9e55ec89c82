"""Probes: async checks of HTTP(S), TCP, PostgreSQL, Redis, TLS certificates, commands and
the host."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

from opsplane.clock import Clock
from opsplane.config.models import HttpCheck
from opsplane.config.types import SecretRef
from opsplane.drivers.probes.base import Probe, ProbeFailed, describe_failure, run_probe
from opsplane.drivers.probes.command import CommandProbe
from opsplane.drivers.probes.host import HostProbe
from opsplane.drivers.probes.http import HttpProbe
from opsplane.drivers.probes.postgres import PostgresProbe
from opsplane.drivers.probes.redis import RedisProbe
from opsplane.drivers.probes.tcp import TcpProbe
from opsplane.drivers.probes.tls import TlsProbe
from opsplane.errors import UsageError
from opsplane.health.targets import CheckTarget

Environ = Mapping[str, str] | None


def _secret(ref: SecretRef | None, environ: Environ) -> str | None:
    # resolve() only looks names up, so any mapping will do.
    return ref.resolve(cast(dict[str, str] | None, environ)) if ref is not None else None


def _http(target: CheckTarget, environ: Environ, clock: Clock | None) -> Probe:
    check = cast(HttpCheck, target.check)
    token = _secret(cast(SecretRef | None, check.bearer_token), environ)
    return HttpProbe.for_target(target, bearer_token=token)


_BUILDERS: dict[str, Callable[[CheckTarget, Environ, Clock | None], Probe]] = {
    "http": _http,
    "tcp": lambda target, environ, clock: TcpProbe.for_target(target),
    "postgres": lambda target, environ, clock: PostgresProbe.for_target(
        target, password=_secret(target.password, environ)),
    "redis": lambda target, environ, clock: RedisProbe.for_target(
        target, password=_secret(target.password, environ)),
    "tls": lambda target, environ, clock: TlsProbe.for_target(target, clock=clock),
    "command": lambda target, environ, clock: CommandProbe.for_target(target, environ=environ),
    "host": lambda target, environ, clock: HostProbe.for_target(target),
}


def build_probe(
    target: CheckTarget, *, environ: Mapping[str, str] | None = None, clock: Clock | None = None
) -> Probe:
    """The probe for `target`; secrets are resolved here, from `environ` (default os.environ).

    Raises SecretError when a secret the check needs cannot be read. `environ` is also the
    base environment of command checks; `clock` gives TLS checks their "now".
    """
    builder = _BUILDERS.get(target.type)
    if builder is None:
        raise UsageError(f"{target.id}: no probe for check type {target.type!r}; "
                         f"known types: {', '.join(sorted(_BUILDERS))}")
    return builder(target, environ, clock)


__all__ = [
    "CommandProbe",
    "HostProbe",
    "HttpProbe",
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
