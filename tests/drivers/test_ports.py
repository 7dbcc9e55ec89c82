"""Ports for temporary servers are picked below the kernel's ephemeral range, so an outgoing
connection (a PgBouncer reaching PostgreSQL, a client reaching Redis) can never be given one
between the pick and the server's bind; each is free to bind when it is handed out."""

from __future__ import annotations

import socket

from opsplane.drivers.sandbox.ports import LOWEST, ephemeral_start, free_port


def test_picked_ports_are_below_the_ephemeral_range_and_free() -> None:
    top = ephemeral_start()
    picked = {free_port() for _ in range(50)}
    assert all(LOWEST <= port < top for port in picked)
    assert len(picked) > 40  # spread, not one port handed out again and again
    for port in list(picked)[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_a_server_holds_is_not_handed_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", free_port()))
        held.listen()
        taken = held.getsockname()[1]
        assert taken not in {free_port() for _ in range(200)}
