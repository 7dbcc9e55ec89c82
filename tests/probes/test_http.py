"""The HTTP(S) probe against real local servers: status, latency, body, JSON, TLS, failures."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import uvloop

from opsplane.drivers.probes.http import MAX_BODY, json_holds, json_path
from opsplane.health.models import State
from tests.support.certs import CertificateFiles, TestAuthority, self_signed
from tests.support.factories import http_target
from tests.support.http_servers import (
    HangingServer,
    LocalHttpServer,
    RawServer,
    Reply,
    closed_port,
)
from tests.support.probing import probe_once

HEALTH = json.dumps({"status": "ok", "checks": {"database": {"status": "up", "latency": 3}},
                     "replicas": [{"name": "a"}], "degraded": False}).encode()


async def test_a_200_is_ok_with_status_latency_and_size() -> None:
    with LocalHttpServer({"/health": Reply(200, b"fine")}) as server:
        result = await probe_once(http_target(server.url("/health")))
    assert result.state is State.OK
    assert result.reason.startswith("HTTP 200 in ") and result.reason.endswith(" ms")
    assert result.metrics["status"] == 200
    assert result.metrics["bytes"] == 4
    assert isinstance(result.metrics["latency_ms"], float)


async def test_the_request_names_host_agent_headers_and_bearer_token() -> None:
    with LocalHttpServer({"/h": Reply()}) as server:
        target = http_target(server.url("/h?deep=1"), headers={"X-Probe": "yes"},
                             bearer_token="env:API_TOKEN")
        await probe_once(target, environ={"API_TOKEN": "t0ken"})
    [seen] = server.seen
    assert (seen.method, seen.path) == ("GET", "/h?deep=1")
    assert seen.headers["host"] == f"127.0.0.1:{server.port}"
    assert seen.headers["user-agent"] == "opsplane-probe/0.1"
    assert seen.headers["connection"] == "close"
    assert seen.headers["x-probe"] == "yes"
    assert seen.headers["authorization"] == "Bearer t0ken"


async def test_a_503_is_critical() -> None:
    with LocalHttpServer({"/": Reply(503, b"down")}) as server:
        result = await probe_once(http_target(server.url()))
    assert result.state is State.CRITICAL
    assert result.reason.startswith("HTTP 503")
    assert result.metrics["status"] == 503


async def test_expected_status_list_replaces_the_2xx_3xx_rule() -> None:
    with LocalHttpServer({"/gone": Reply(410), "/ok": Reply(200)}) as server:
        gone = await probe_once(http_target(server.url("/gone"), expect_status=[410]))
        ok = await probe_once(http_target(server.url("/ok"), expect_status=[201, 204]))
    assert gone.state is State.OK
    assert ok.state is State.CRITICAL
    assert "HTTP 200" in ok.reason and "expected 201, 204" in ok.reason


async def test_redirects_are_reported_not_followed() -> None:
    with LocalHttpServer({"/old": Reply(302, b"", headers=(("Location", "/new"),))}) as server:
        result = await probe_once(http_target(server.url("/old")))
    assert result.state is State.OK
    assert result.metrics["status"] == 302
    assert [seen.path for seen in server.seen] == ["/old"]


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
async def test_body_contains_reads_every_framing(framing: str) -> None:
    body = b"status: all systems ok, " + b"x" * 5000
    with LocalHttpServer({"/": Reply(200, body, framing=framing)}) as server:  # type: ignore[arg-type]
        found = await probe_once(http_target(server.url(), body_contains="systems ok"))
        missing = await probe_once(http_target(server.url(), body_contains="degraded"))
    assert found.state is State.OK
    assert found.metrics["bytes"] == len(body)
    assert missing.state is State.CRITICAL
    assert missing.reason == f"body does not contain 'degraded' — {server.url()}"


async def test_body_reading_stops_at_one_mebibyte() -> None:
    body = b"a" * (3 * MAX_BODY) + b"needle"
    with LocalHttpServer({"/big": Reply(200, body), "/chunked": Reply(
            200, body, framing="chunked", chunk_size=65536)}) as server:
        plain = await probe_once(http_target(server.url("/big"), body_contains="needle"))
        chunked = await probe_once(http_target(server.url("/chunked")))
    assert plain.metrics["bytes"] == MAX_BODY
    assert plain.state is State.CRITICAL
    assert plain.reason == f"body (first 1 MiB) does not contain 'needle' — {server.url('/big')}"
    assert chunked.metrics["bytes"] == MAX_BODY and chunked.state is State.OK


async def test_head_requests_expect_no_body() -> None:
    with LocalHttpServer({"/": Reply(200, b"ignored")}) as server:
        result = await probe_once(http_target(server.url(), method="HEAD"))
    assert result.state is State.OK
    assert result.metrics["bytes"] == 0
    assert server.seen[0].method == "HEAD"


async def test_json_condition_that_holds_is_ok() -> None:
    with LocalHttpServer({"/": Reply(200, HEALTH, "application/json")}) as server:
        result = await probe_once(http_target(
            server.url(), json={"path": "checks.database.status", "op": "==", "value": "up"}))
    assert result.state is State.OK


async def test_json_condition_that_fails_names_path_expected_and_actual() -> None:
    with LocalHttpServer({"/": Reply(200, HEALTH, "application/json")}) as server:
        result = await probe_once(http_target(
            server.url(), json={"path": "checks.database.latency", "op": "<", "value": 2}))
    assert result.state is State.CRITICAL
    assert result.reason == f"json checks.database.latency: expected < 2, got 3 — {server.url()}"


async def test_json_condition_on_a_missing_field_is_critical() -> None:
    with LocalHttpServer({"/": Reply(200, HEALTH, "application/json")}) as server:
        result = await probe_once(http_target(
            server.url(), json={"path": "checks.cache.status", "value": "up"}))
    assert result.state is State.CRITICAL
    assert result.reason == f'json checks.cache.status is missing, expected == "up" — {server.url()}'


async def test_json_condition_on_a_body_that_is_not_json_is_critical() -> None:
    with LocalHttpServer({"/": Reply(200, b"<html>ok</html>")}) as server:
        result = await probe_once(http_target(server.url(), json={"path": "status", "value": "ok"}))
    assert result.state is State.CRITICAL
    assert result.reason.startswith("body is not JSON")


@pytest.mark.parametrize(
    ("actual", "op", "expected", "holds"),
    [
        ("ok", "==", "ok", True),
        (1, "==", True, False),  # a JSON true is not the number 1
        (False, "!=", 0, True),
        (3, "<=", 3, True),
        (3.5, ">", 3, True),
        ("b", ">", "a", True),
        ("3", "<", 4, False),  # no ordering between a string and a number
        ("up", "in", ["up", "degraded"], True),
        ("down", "in", ["up", "degraded"], False),
        (None, "==", None, True),
    ],
)
def test_json_comparisons(actual: object, op: str, expected: object, holds: bool) -> None:
    assert json_holds(actual, op, expected) is holds


def test_json_paths_walk_objects_and_lists() -> None:
    document = json.loads(HEALTH)
    assert json_path(document, "replicas.0.name") == "a"
    assert json_path(document, "replicas.-1.name") == "a"
    assert json_path(document, "degraded") is False
    assert json_path(document, "replicas.5.name") is not None  # the missing sentinel
    assert json_path(document, "replicas.5.name") is json_path(document, "nope")


async def test_slow_answers_are_warning_then_critical() -> None:
    with LocalHttpServer({"/slow": Reply(200, delay=0.3)}) as server:
        warning = await probe_once(http_target(server.url("/slow"), latency_warning=0.1))
        critical = await probe_once(http_target(server.url("/slow"), latency_warning=0.1,
                                                latency_critical=0.2))
    assert warning.state is State.WARNING
    assert warning.reason.startswith("HTTP 200 in ") and "slower than 100 ms" in warning.reason
    assert critical.state is State.CRITICAL
    assert "slower than 200 ms" in critical.reason


async def test_a_closed_port_refuses_connections() -> None:
    url = f"http://127.0.0.1:{closed_port()}/health"
    result = await probe_once(http_target(url))
    assert (result.state, result.reason) == (State.CRITICAL, f"refuses connections — {url}")


async def test_a_server_that_never_answers_is_cut_at_the_timeout() -> None:
    with HangingServer() as server:
        started = time.perf_counter()
        result = await probe_once(http_target(server.url(), timeout=0.5))
        elapsed = time.perf_counter() - started
    assert result.state is State.CRITICAL
    assert result.reason == f"no answer within 500 ms — {server.url()}"
    assert 0.5 <= elapsed < 0.8


async def test_a_connection_closed_without_an_answer_is_critical() -> None:
    with RawServer(b"") as server:
        result = await probe_once(http_target(server.url()))
    assert (result.state, result.reason) == (
        State.CRITICAL, f"connection closed with no response — {server.url()}")


async def test_a_body_cut_short_is_critical() -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"
    with RawServer(response) as server:
        result = await probe_once(http_target(server.url()))
    assert result.state is State.CRITICAL
    assert "closed in the middle of the body after 9 bytes" in result.reason


async def test_interim_responses_are_skipped() -> None:
    response = (b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    with RawServer(response) as server:
        result = await probe_once(http_target(server.url(), body_contains="ok"))
    assert result.state is State.OK and result.metrics["status"] == 200


async def test_something_that_is_not_http_is_critical() -> None:
    with RawServer(b"SSH-2.0-OpenSSH_9.2\r\n\r\n") as server:
        result = await probe_once(http_target(server.url()))
    assert result.state is State.CRITICAL
    assert result.reason.startswith("not an HTTP response")


async def test_a_header_with_a_line_break_is_a_configuration_fault() -> None:
    result = await probe_once(http_target("http://127.0.0.1:1/", headers={"X-A": "b\r\nEvil: 1"}))
    assert result.state is State.UNKNOWN
    assert "header X-A contains a line break" in result.reason


async def test_https_without_verification_accepts_a_self_signed_certificate(tmp_path: Path) -> None:
    cert = self_signed(tmp_path, valid_days=30)
    with https_server(cert) as server:
        result = await probe_once(http_target(server.url(), verify_tls=False))
    assert result.state is State.OK, result.reason


async def test_https_with_verification_rejects_a_self_signed_certificate(tmp_path: Path) -> None:
    cert = self_signed(tmp_path, valid_days=30)
    with https_server(cert) as server:
        result = await probe_once(http_target(server.url()))
    assert result.state is State.CRITICAL
    assert "not trusted" in result.reason


async def test_https_trusts_the_ca_file_given(tmp_path: Path) -> None:
    authority = TestAuthority(tmp_path)
    cert = authority.issue(valid_days=90)
    with https_server(cert) as server:
        result = await probe_once(http_target(server.url(), ca_file=str(authority.ca_file)))
    assert result.state is State.OK, result.reason


async def test_an_unreadable_ca_file_is_a_configuration_fault(tmp_path: Path) -> None:
    result = await probe_once(http_target("https://127.0.0.1:1/", ca_file=str(tmp_path / "no.pem")))
    assert result.state is State.UNKNOWN
    assert result.reason.startswith(f"CA file {tmp_path / 'no.pem'} cannot be read")


def https_server(cert: CertificateFiles) -> LocalHttpServer:
    return LocalHttpServer({"/": Reply()}, cert_file=cert.cert_file, key_file=cert.key_file)


def test_the_probe_runs_on_uvloop(tmp_path: Path) -> None:
    cert = self_signed(tmp_path, valid_days=30)
    routes = {"/": Reply(200, b"ok"), "/chunked": Reply(200, b"ok" * 100, framing="chunked")}
    with LocalHttpServer(routes) as plain, LocalHttpServer(
            routes, cert_file=cert.cert_file, key_file=cert.key_file) as secure, \
            HangingServer() as hanging:

        async def run_all() -> list[tuple[State, str]]:
            results = await asyncio.gather(
                probe_once(http_target(plain.url("/chunked"), body_contains="okok")),
                probe_once(http_target(secure.url(), verify_tls=False)),
                probe_once(http_target(secure.url())),
                probe_once(http_target(hanging.url(), timeout=0.3)),
            )
            return [(r.state, r.reason) for r in results]

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            (chunked, insecure, verified, hung) = runner.run(run_all())
    assert chunked[0] is State.OK and insecure[0] is State.OK
    assert verified[0] is State.CRITICAL and "not trusted" in verified[1]
    assert hung == (State.CRITICAL, f"no answer within 300 ms — {hanging.url()}")
