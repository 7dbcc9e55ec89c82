"""A small HTTP service for the runtime tests, run as a real process by the supervisor.

    python service_app.py PORT [--child] [--ignore-term] [--chatter] [--release NAME]

GET /health answers JSON with its pid, instance, release and environment; /say?text=... prints the
text on stdout; /warn?text=... prints it on stderr; /fail prints a traceback on stderr and
answers 500; /timeout logs an ERROR line on stderr; /bulk?n=N prints N numbered lines. Every
request is also logged on stderr in common log format. --child starts a `sleep` in the same
session (a worker it forgets to stop); --ignore-term makes SIGTERM do nothing, so only SIGKILL
ends it; --chatter prints a numbered line on stdout and on stderr every 50 ms, as a busy service
logs all the time. --release names the release it runs (the runtime's {version}); a release whose
name starts with "broken" cannot start: it says so on stderr and exits 3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHILD: subprocess.Popen[bytes] | None = None


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(url.query).items()}
        if url.path == "/health":
            self._json(200, {
                "pid": os.getpid(),
                "instance": os.environ.get("INSTANCE"),
                "greeting": os.environ.get("GREETING"),
                "secret_length": len(os.environ.get("SHOP_TOKEN", "")),
                "database_url_visible": "OPSPLANE_DATABASE_URL" in os.environ,
                "child": CHILD.pid if CHILD else None,
                "cwd": os.getcwd(),
                "release": os.environ.get("RELEASE"),
                "argv_release": argument("--release"),
            })
        elif url.path == "/say":
            print(query.get("text", ""), flush=True)
            self._json(200, {"said": query.get("text", "")})
        elif url.path == "/warn":
            print(query.get("text", ""), file=sys.stderr, flush=True)
            self._json(200, {"warned": query.get("text", "")})
        elif url.path == "/bulk":
            for n in range(int(query.get("n", "10"))):
                print(f"bulk line {n:05d} " + "x" * 40, flush=True)
            self._json(200, {})
        elif url.path == "/timeout":
            print("2026-01-06 08:00:01,120 ERROR payment provider timeout after 3000 ms", file=sys.stderr,
                  flush=True)
            self._json(200, {})
        elif url.path == "/fail":
            print("Traceback (most recent call last):", file=sys.stderr)
            print('  File "app.py", line 1, in checkout', file=sys.stderr)
            print("ValueError: payment provider answered 42", file=sys.stderr, flush=True)
            self._json(500, {"error": "boom"})
        else:
            self._json(404, {"error": "not found"})

    def _json(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def chatter() -> None:
    n = 0
    while True:
        print(f"tick {n}", flush=True)
        print(f"tock {n}", file=sys.stderr, flush=True)
        n += 1
        time.sleep(0.05)


def argument(option: str) -> str | None:
    """The value given after `option` on the command line, if any."""
    if option in sys.argv[:-1]:
        return sys.argv[sys.argv.index(option) + 1]
    return None


def main() -> None:
    global CHILD
    port = int(sys.argv[1])
    release = argument("--release")
    if release is not None and release.startswith("broken"):
        print(f"release {release} cannot start: missing migration", file=sys.stderr, flush=True)
        sys.exit(3)
    if "--ignore-term" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "--child" in sys.argv:
        CHILD = subprocess.Popen(["sleep", "300"])  # noqa: S603, S607 - fixed test program
    if "--chatter" in sys.argv:
        threading.Thread(target=chatter, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
