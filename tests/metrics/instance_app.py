"""One instance of a service for the scrape discovery tests, run as a real process by the
supervisor.

    python instance_app.py PORT VERSION

GET /metrics answers `http_requests_total` labelled with the release `VERSION`, counting the
scrapes it has answered; any other path answers 404.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    version_label = ""
    answered = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path != "/metrics":
            self._send(404, b"not found\n")
            return
        Handler.answered += 1
        body = ("# TYPE http_requests_total counter\n"
                f'http_requests_total{{code="200",version="{self.version_label}"}} {Handler.answered}\n')
        self._send(200, body.encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's naming
        pass


def main() -> None:
    port, Handler.version_label = int(sys.argv[1]), sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening on {port} as {Handler.version_label}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
