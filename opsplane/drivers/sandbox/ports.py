"""Free loopback ports for temporary servers."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# Where the kernel takes the local ports of outgoing connections: a port picked inside it can be
# handed to a connection (to PostgreSQL, PgBouncer, Redis...) before the server it was picked
# for binds it. Ports are picked below it; where it cannot be read, Linux's default.
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10000
ATTEMPTS = 64


def ephemeral_start() -> int:
    try:
        return int(EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now, outside the ephemeral range.

    The port is released before returning, so another process could take it in between: a
    server binding it, never an outgoing connection. Falls back to one the kernel picks when the
    range below the ephemeral ports is full or too small.
    """
    top = ephemeral_start()
    for _ in range(ATTEMPTS if top - LOWEST > 1000 else 0):
        port = random.randrange(LOWEST, top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
