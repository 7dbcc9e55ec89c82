"""A configured secret never appears in a check's result: not in its reason (which the
events, the health table and the dashboard show), not in its metrics, for every kind of
check, against real servers that reject the secret, mishandle it or repeat it."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from opsplane.config.models import CHECK_TYPES, HostCheck, PgBouncerCheck, TcpCheck, TlsCheck
from opsplane.drivers.sandbox.pgbouncer import Backend, TemporaryPgBouncer
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.health.models import ProbeResult
from opsplane.health.targets import CheckTarget
from tests.support.certs import TestAuthority
from tests.support.factories import (
    command_target,
    http_target,
    postgres_target,
    redis_target,
    target_for,
)
from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.probing import probe_once

# The part after "hunter2-" is looked for too: a secret cut in the middle must not show.
UNIQUE = uuid.uuid4().hex
SECRET = f"hunter2-{UNIQUE}"
ENVIRON = {"THE_SECRET": SECRET, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
REF = "env:THE_SECRET"


@pytest.fixture(scope="module")
def redis_without_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryRedis]:
    """A Redis with no password whose AUTH command was renamed away: it answers AUTH with
    "unknown command 'AUTH', with args beginning with: '<the password>'"."""
    with TemporaryRedis(tmp_path_factory.mktemp("redis-no-auth"),
                        extra_args=["--rename-command", "AUTH", ""]) as server:
        yield server


@pytest.fixture(scope="module")
def redis_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporaryRedis]:
    """A Redis without requirepass: AUTH is an error."""
    with TemporaryRedis(tmp_path_factory.mktemp("redis-open")) as server:
        yield server


@pytest.fixture(scope="module")
def pgbouncer_md5(tmp_path_factory: pytest.TempPathFactory, postgres_cluster: TemporaryPostgres
                  ) -> Iterator[TemporaryPgBouncer]:
    """A PgBouncer whose admin user has a password that is not the secret."""
    backend = Backend(postgres_cluster.host, postgres_cluster.port, "postgres")
    users = {"postgres": None, "pgbouncer": "not-the-secret"}
    with TemporaryPgBouncer(tmp_path_factory.mktemp("bouncer"), {"postgres": backend}, users=users,
                            auth_type="md5") as bouncer:
        yield bouncer


Case = Callable[[pytest.FixtureRequest, Path], Awaitable[ProbeResult]]


async def _run(target: CheckTarget) -> ProbeResult:
    return await probe_once(target, environ=ENVIRON)


async def http_echoing_the_token(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    # The server sends the request's headers back; the check quotes the field it compares.
    with LocalHttpServer({"/": Reply(echo_headers=True)}) as server:
        return await _run(http_target(server.url("/"), bearer_token=REF,
                                      json={"path": "headers.authorization",
                                            "value": "Bearer something-else"}))


async def postgres_wrong_password(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    cluster: TemporaryPostgres = request.getfixturevalue("postgres_cluster")
    return await _run(postgres_target(cluster.port, password=REF))


async def redis_auth_unknown(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    server: TemporaryRedis = request.getfixturevalue("redis_without_auth")
    return await _run(redis_target(server.port, password=REF))


async def redis_without_requirepass(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    server: TemporaryRedis = request.getfixturevalue("redis_open")
    return await _run(redis_target(server.port, password=REF))


async def redis_wrong_password(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    server: TemporaryRedis = request.getfixturevalue("redis_server")
    return await _run(redis_target(server.port, password=REF))


def _printing(stream: str, code: int, before: str = "") -> list[str]:
    return [sys.executable, "-c",
            f"import os, sys; print({before!r} + 'TOKEN=' + os.environ['TOKEN'], file=sys.{stream});"
            f" sys.exit({code})"]


async def command_printing_it_failing(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    return await _run(command_target(_printing("stderr", 2), secret_env={"TOKEN": REF}))


async def command_printing_it_ok(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    return await _run(command_target(_printing("stdout", 0), secret_env={"TOKEN": REF}))


async def command_printing_it_at_the_cut(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    # The reason keeps 200 characters: the secret starts just before the cut.
    argv = _printing("stdout", 1, before="x" * 180)
    return await _run(command_target(argv, secret_env={"TOKEN": REF}))


async def tcp_of_a_database(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    server: TemporaryRedis = request.getfixturevalue("redis_open")
    return await _run(target_for(TcpCheck(type="tcp"), port=server.port, password=REF))


async def pgbouncer_wrong_password(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    bouncer: TemporaryPgBouncer = request.getfixturevalue("pgbouncer_md5")
    return await _run(target_for(PgBouncerCheck(type="pgbouncer", password=REF), port=bouncer.port))


async def tls_of_a_database(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    cert = TestAuthority(tmp).issue(valid_days=3, common_name="db.example.test")
    with LocalHttpServer(cert_file=cert.cert_file, key_file=cert.key_file) as server:
        return await _run(target_for(TlsCheck(type="tls"), port=server.port, password=REF))


async def host_of_a_database(request: pytest.FixtureRequest, tmp: Path) -> ProbeResult:
    return await _run(target_for(HostCheck(type="host", disk_warning=0.0), password=REF))


CASES: dict[str, tuple[str, Case]] = {
    "http-echoing-the-token": ("http", http_echoing_the_token),
    "postgres-wrong-password": ("postgres", postgres_wrong_password),
    "redis-auth-unknown": ("redis", redis_auth_unknown),
    "redis-without-requirepass": ("redis", redis_without_requirepass),
    "redis-wrong-password": ("redis", redis_wrong_password),
    "command-printing-it-failing": ("command", command_printing_it_failing),
    "command-printing-it-ok": ("command", command_printing_it_ok),
    "command-printing-it-at-the-cut": ("command", command_printing_it_at_the_cut),
    "tcp-of-a-database": ("tcp", tcp_of_a_database),
    "pgbouncer-wrong-password": ("pgbouncer", pgbouncer_wrong_password),
    "tls-of-a-database": ("tls", tls_of_a_database),
    "host-of-a-database": ("host", host_of_a_database),
}


def test_every_kind_of_check_has_a_case() -> None:
    assert {kind for kind, _ in CASES.values()} == set(CHECK_TYPES)


@pytest.mark.parametrize("case", CASES)
async def test_a_configured_secret_never_appears_in_a_result(
    case: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    _, run = CASES[case]
    result = await run(request, tmp_path)
    shown = f"{result.reason} {result.metrics!r}"
    assert UNIQUE[:8] not in shown, f"the secret shows in {shown}"
    assert result.reason  # something was said, without it
