"""A stand-in service for the demo: `/health` reports its dependencies' state.

Run as `python -m opsplane.demo.target --name catalog --port 8101 [--postgres DSN]
[--redis HOST:PORT] [--upstream URL]`. It answers 200 with {"status": "ok", ...} when every
dependency answers, 503 naming the one that does not otherwise.
"""

from __future__ import annotations

import argparse
import json
import socket
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def check_postgres(dsn: str) -> str:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=1) as conn:
            conn.execute("SELECT 1")
        return "ok"
    except psycopg.Error as exc:
        return f"down: {str(exc).splitlines()[0][:120]}"


def check_redis(address: str) -> str:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return "ok" if sock.recv(64).startswith(b"+PONG") else "down: unexpected answer"
    except OSError as exc:
        return f"down: {exc.strerror or exc}"


def check_upstream(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=1.5) as response:  # noqa: S310 - loopback URL from argv
            return "ok" if response.status == 200 else f"down: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return f"down: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"down: {getattr(reason, 'strerror', None) or reason}"


def make_handler(args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"opsplane-demo-{args.name}"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] != "/health":
                self._send(404, {"error": "not found"})
                return
            deps: dict[str, Any] = {}
            if args.postgres:
                deps["database"] = check_postgres(args.postgres)
            if args.redis:
                deps["cache"] = check_redis(args.redis)
            if args.upstream:
                deps["upstream"] = check_upstream(args.upstream)
            healthy = all(v == "ok" for v in deps.values())
            self._send(200 if healthy else 503,
                       {"status": "ok" if healthy else "degraded", "service": args.name,
                        "version": "v1", "dependencies": deps})

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--postgres")
    parser.add_argument("--redis")
    parser.add_argument("--upstream")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args))
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
