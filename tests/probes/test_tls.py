"""The TLS probe: days until the served certificate expires, judged by thresholds."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from opsplane.clock import ManualClock
from opsplane.health.models import State
from tests.support.certs import TestAuthority, self_signed
from tests.support.factories import tls_target
from tests.support.http_servers import LocalHttpServer, closed_port
from tests.support.probing import probe_once


async def test_a_certificate_far_from_expiry_is_ok(tmp_path: Path) -> None:
    authority = TestAuthority(tmp_path)
    cert = authority.issue(valid_days=365, common_name="shop.example.test")
    with LocalHttpServer(cert_file=cert.cert_file, key_file=cert.key_file) as server:
        result = await probe_once(tls_target(server.port))
    assert result.state is State.OK
    assert result.metrics["days_left"] == 364  # whole days, rounded down
    date = cert.not_after.date().isoformat()
    assert result.reason == f"certificate expires in 364 days (CN shop.example.test, {date})"
    assert result.metrics["not_after"] == cert.not_after.isoformat()
    assert result.metrics["subject"] == "CN=shop.example.test"
    assert result.metrics["issuer"] == "CN=opsplane test CA"


async def test_a_certificate_near_expiry_is_warning_or_critical_by_threshold(
    tmp_path: Path,
) -> None:
    cert = self_signed(tmp_path, valid_days=3)
    with LocalHttpServer(cert_file=cert.cert_file, key_file=cert.key_file) as server:
        default = await probe_once(tls_target(server.port))  # warn 30 days, critical 7
        lenient = await probe_once(tls_target(server.port, critical_days=1))
    assert default.state is State.CRITICAL
    assert default.reason.startswith("certificate expires in 2 days (CN localhost")
    assert lenient.state is State.WARNING


async def test_an_expired_certificate_is_critical(tmp_path: Path) -> None:
    cert = self_signed(tmp_path, valid_days=-3)
    with LocalHttpServer(cert_file=cert.cert_file, key_file=cert.key_file) as server:
        result = await probe_once(tls_target(server.port))
    assert result.state is State.CRITICAL
    date = cert.not_after.date().isoformat()
    assert result.reason == f"certificate expired 3 days ago (CN localhost, {date}) — 127.0.0.1:{server.port}"
    assert result.metrics["days_left"] == -4  # rounded down, like every other day count


async def test_now_comes_from_the_injected_clock(tmp_path: Path) -> None:
    cert = self_signed(tmp_path, valid_days=365)
    with LocalHttpServer(cert_file=cert.cert_file, key_file=cert.key_file) as server:
        target = tls_target(server.port, warning_days=30)
        clock = ManualClock(cert.not_after - timedelta(days=10))
        later = await probe_once(target, clock=clock)
        clock.advance(10 * 86400 + 1)
        expired = await probe_once(target, clock=clock)
    assert (later.state, later.metrics["days_left"]) == (State.WARNING, 10)
    assert expired.state is State.CRITICAL
    assert expired.reason.startswith("certificate expired today")


async def test_the_server_name_is_sent_as_sni(tmp_path: Path) -> None:
    cert = self_signed(tmp_path, valid_days=90)
    with LocalHttpServer(cert_file=cert.cert_file, key_file=cert.key_file) as server:
        await probe_once(tls_target(server.port, server_name="api.example.test"))
        await probe_once(tls_target(server.port, host="localhost"))
    assert server.server_names == ["api.example.test", "localhost"]


async def test_a_server_without_tls_is_critical() -> None:
    with LocalHttpServer() as server:
        result = await probe_once(tls_target(server.port))
    assert result.state is State.CRITICAL
    assert result.reason.startswith("TLS handshake failed")


async def test_a_closed_port_refuses_connections() -> None:
    port = closed_port()
    result = await probe_once(tls_target(port))
    assert (result.state, result.reason) == (State.CRITICAL, f"refuses connections — 127.0.0.1:{port}")
