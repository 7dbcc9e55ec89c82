"""A tiny HTTP service for the runs of the shipped runbooks, run as a real process by opsplane's
runtime.

    python tiny_service.py PORT [--leak-file PATH --leak-mb N]

GET /health answers 200 with its pid; /login answers 401 and /admin 403 (a scan, failed
logins); /metrics counts every answer in `http_requests_total` by route and status. With
--leak-file, a process that finds that file holds N MB it never gives back and deletes the
file: a leak that a restart clears, as the next process starts without it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ANSWERS = {"/health": 200, "/login": 401, "/admin": 403}
# Every route's counter from the start, at 0: a rate needs the counter in two scrapes.
COUNTS: Counter[tuple[str, int]] = Counter({route_status: 0 for route_status in ANSWERS.items()})
LOCK = threading.Lock()
HELD: list[bytearray] = []


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path == "/metrics":
            with LOCK:
                lines = [f'http_requests_total{{route="{route}",status="{status}"}} {count}'
                         for (route, status), count in sorted(COUNTS.items())]
            body = ("# TYPE http_requests_total counter\n" + "\n".join(lines) + "\n").encode()
            self._send(200, body, "text/plain; version=0.0.4")
            return
        status = ANSWERS.get(self.path, 404)
        with LOCK:
            COUNTS[(self.path if status != 404 else "other", status)] += 1
        body = json.dumps({"pid": os.getpid(), "held_mb": len(HELD)}).encode()
        self._send(status, body, "application/json")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's naming
        pass


def main(argv: list[str]) -> None:
    port = int(argv[0])
    if "--leak-file" in argv:
        leak = Path(argv[argv.index("--leak-file") + 1])
        if leak.exists():
            leak.unlink()
            for _ in range(int(argv[argv.index("--leak-mb") + 1])):
                HELD.append(bytearray(b"x" * (1 << 20)))  # touched, so it is resident
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
