"""The TLS probe: days until the served certificate expires, judged by thresholds."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from opsplane.clock import ManualClock
from opsplane.health.models import State
from tests.support.certs import TestAuthority, self_signed
from tests.support.factories import tls_target
from tests.support.http_servers import LocalHttpServer, closed_port
from tests.support.probing import probe_once


def _utc(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_certificate_far_from_expiry_is_ok(tmp_path: Path) -> None:
    authority = TestAuthority(tmp_path)
    cert = authority.issue(valid_days=365, common_name="shop.example.test")
    with LocalHttpServer(cert_file=cert.cert_file, key_file=cert.key_file) as server:
        result = await probe_once(tls_target(server.port))
    assert result.state is State.OK
    assert result.metrics["days_left"] == 364  # complete days: a moment less than 365 is 364
    assert result.reason == (f"certificate expires in 364d 23h, at {_utc(cert.not_after)} "
                             "(CN shop.example.test)")
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
    assert default.reason == (f"certificate expires in 2d 23h, at {_utc(cert.not_after)} "
                              f"(CN localhost) — 127.0.0.1:{server.port}")
    assert lenient.state is State.WARNING


async def test_an_expired_certificate_is_critical(tmp_path: Path) -> None:
    cert = self_signed(tmp_path, valid_days=-3)
    with LocalHttpServer(cert_file=cert.cert_file, key_file=cert.key_file) as server:
        result = await probe_once(tls_target(server.port))
    assert result.state is State.CRITICAL
    assert result.reason == (f"certificate expired 3d 0h ago, at {_utc(cert.not_after)} "
                             f"(CN localhost) — 127.0.0.1:{server.port}")
    assert result.metrics["days_left"] == -3  # the same complete days as the text


# (time from now to expiry, warning_days, critical_days) -> (state, text, days_left)
EDGES = [
    (timedelta(days=4, hours=23), 30, 5, State.CRITICAL, "expires in 4d 23h", 4),
    (timedelta(days=5), 30, 5, State.CRITICAL, "expires in 5d 0h", 5),
    (timedelta(days=5, seconds=1), 30, 5, State.WARNING, "expires in 5d 0h", 5),
    (timedelta(days=30, seconds=1), 30, 5, State.OK, "expires in 30d 0h", 30),
    (timedelta(days=29, hours=23, minutes=59), 30, 5, State.WARNING, "expires in 29d 23h", 29),
    (timedelta(seconds=1), 30, 0, State.WARNING, "expires in 1s", 0),
    (-timedelta(seconds=5), 30, 5, State.CRITICAL, "expired 5s ago", 0),
    (-timedelta(days=1, seconds=31), 30, 5, State.CRITICAL, "expired 1d 0h ago", -1),
    (-timedelta(days=2, hours=23), 30, 5, State.CRITICAL, "expired 2d 23h ago", -2),
]


async def test_text_metric_and_thresholds_share_one_rounding_rule(tmp_path: Path) -> None:
    cert = self_signed(tmp_path, valid_days=365, common_name="shop.example.test")
    with LocalHttpServer(cert_file=cert.cert_file, key_file=cert.key_file) as server:
        found = []
        for left, warning, critical, *_ in EDGES:
            target = tls_target(server.port, warning_days=warning, critical_days=critical)
            clock = ManualClock(cert.not_after - left)
            found.append(await probe_once(target, clock=clock))
    when = _utc(cert.not_after)
    for (left, _, _, state, text, days_left), result in zip(EDGES, found, strict=True):
        assert (result.state, result.metrics["days_left"]) == (state, days_left), left
        assert result.reason.startswith(f"certificate {text}, at {when} (CN shop.example.test)")


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
    assert expired.reason.startswith("certificate expired 1s ago")


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
