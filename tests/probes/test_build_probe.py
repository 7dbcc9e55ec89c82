"""build_probe: one probe class per check type, secrets resolved from the given environment."""

from __future__ import annotations

import pytest

import opsplane.drivers.probes as probes
from opsplane.drivers.probes import (
    CommandProbe,
    HostProbe,
    HttpProbe,
    PostgresProbe,
    RedisProbe,
    TcpProbe,
    TlsProbe,
    build_probe,
)
from opsplane.errors import SecretError
from tests.support.factories import (
    command_target,
    host_target,
    http_target,
    postgres_target,
    redis_target,
    tcp_target,
    tls_target,
)


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        (http_target("https://shop.example.test/health"), HttpProbe),
        (tcp_target(5432), TcpProbe),
        (postgres_target(5432), PostgresProbe),
        (redis_target(6379), RedisProbe),
        (tls_target(443), TlsProbe),
        (command_target(["true"]), CommandProbe),
        (host_target(), HostProbe),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_each_check_type_gets_its_probe(target: object, kind: type) -> None:
    assert isinstance(build_probe(target, environ={}), kind)  # type: ignore[arg-type]


def test_secrets_are_resolved_from_the_given_environment() -> None:
    probe = build_probe(postgres_target(5432, password="env:DB_PASS"), environ={"DB_PASS": "pw"})
    assert isinstance(probe, PostgresProbe) and probe.password == "pw"


@pytest.mark.parametrize(
    "target",
    [
        postgres_target(5432, password="env:DB_PASS"),
        redis_target(6379, password="env:DB_PASS"),
        http_target("http://127.0.0.1/", bearer_token="env:DB_PASS"),
    ],
)
def test_a_missing_secret_is_a_secret_error(target: object) -> None:
    with pytest.raises(SecretError, match="DB_PASS"):
        build_probe(target, environ={})  # type: ignore[arg-type]


def test_the_public_surface() -> None:
    assert set(probes.__all__) == {
        "Probe", "ProbeFailed", "build_probe", "describe_failure", "run_probe",
        "CommandProbe", "HostProbe", "HttpProbe", "PostgresProbe", "RedisProbe", "TcpProbe",
        "TlsProbe", "PgBouncerProbe",
    }
