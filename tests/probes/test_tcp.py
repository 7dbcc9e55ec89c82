"""The TCP probe: an open port, a closed one, a missing port."""

from __future__ import annotations

import socket

from opsplane.config.models import TcpCheck
from opsplane.health.models import State
from tests.support.factories import target_for, tcp_target
from tests.support.http_servers import closed_port
from tests.support.probing import probe_once


async def test_an_open_port_is_ok_with_the_connect_time() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result = await probe_once(tcp_target(port))
    assert result.state is State.OK
    assert result.reason.startswith(f"port {port} open in ")
    assert isinstance(result.metrics["connect_ms"], float)


async def test_a_closed_port_refuses_connections() -> None:
    port = closed_port()
    result = await probe_once(tcp_target(port))
    assert (result.state, result.reason) == (State.CRITICAL, f"refuses connections — 127.0.0.1:{port}")


async def test_a_check_without_a_port_is_unknown() -> None:
    result = await probe_once(target_for(TcpCheck(type="tcp"), port=None))
    assert result.state is State.UNKNOWN
    assert result.reason.startswith("no port to check")
