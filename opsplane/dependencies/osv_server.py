"""An OSV-compatible API over local advisories, for sites that cannot reach api.osv.dev.

It answers the routes pip-audit and opsplane use, in api.osv.dev's shapes:

- `POST /v1/query` `{"package": {"name", "ecosystem"} | {"purl"}, "version"}` → `{"vulns": [record...]}`,
  or `{}` when nothing affects that version;
- `POST /v1/querybatch` `{"queries": [query...]}` → `{"results": [{"vulns": [{"id", "modified"}]}...]}`;
- `GET /v1/vulns/{id}` → the record, or 404.

A query by commit, or without a version, is refused with 400: a mirror of exports has no commit
index. The advisories are read once at start (`osv.load`); restart it to read new exports.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from opsplane.dependencies.osv import Advisories

PURL_TYPES = {"pypi": "PyPI", "npm": "npm"}
MAX_BODY = 1 << 20


class QueryError(ValueError):
    """A query this API cannot answer (400)."""


def _package(query: dict[str, Any]) -> tuple[str, str, str]:
    package = query.get("package")
    if not isinstance(package, dict):
        raise QueryError("a query names a package (a query by commit is not supported here)")
    version = query.get("version")
    name, ecosystem = package.get("name"), package.get("ecosystem")
    purl = package.get("purl")
    if isinstance(purl, str) and purl.startswith("pkg:"):
        kind, _, rest = purl[4:].partition("/")
        rest, _, at = rest.partition("@")
        name, ecosystem = unquote(rest), PURL_TYPES.get(kind.lower(), kind)
        version = version or (unquote(at) if at else None)
    if not isinstance(name, str) or not isinstance(ecosystem, str):
        raise QueryError("a query's package has a name and an ecosystem, or a purl")
    if not isinstance(version, str) or not version:
        raise QueryError("a query names a version (listing every advisory of a package is not supported)")
    return ecosystem, name, version


def answer_query(advisories: Advisories, query: Any) -> dict[str, Any]:
    """The answer of `/v1/query` to `query`."""
    if not isinstance(query, dict):
        raise QueryError("the body is a JSON object")
    found = advisories.query(*_package(query))
    return {"vulns": found} if found else {}


def answer_batch(advisories: Advisories, body: Any) -> dict[str, Any]:
    """The answer of `/v1/querybatch`: per query, the ids and modification times of what affects it."""
    queries = body.get("queries") if isinstance(body, dict) else None
    if not isinstance(queries, list):
        raise QueryError("the body is {\"queries\": [...]}")
    results = []
    for query in queries:
        if not isinstance(query, dict):
            raise QueryError("each query is a JSON object")
        found = advisories.query(*_package(query))
        results.append({"vulns": [{"id": r["id"], "modified": r.get("modified")} for r in found]}
                       if found else {})
    return {"results": results}


class _Handler(BaseHTTPRequestHandler):
    server: OsvServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if self.server.log is not None:
            self.server.log(f"{self.address_string()} " + format % args)

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, {"code": 3 if status == HTTPStatus.BAD_REQUEST else 5, "message": message})

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path.startswith("/v1/vulns/"):
            record = self.server.advisories.by_id.get(unquote(path.removeprefix("/v1/vulns/")))
            if record is None:
                self._error(HTTPStatus.NOT_FOUND, "Bug not found.")
            else:
                self._send(HTTPStatus.OK, record)
        elif path in ("/", "/health"):
            self._send(HTTPStatus.OK, {"advisories": len(self.server.advisories)})
        else:
            self._error(HTTPStatus.NOT_FOUND, "Not found.")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._error(HTTPStatus.BAD_REQUEST, "the body is too large")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
            if path == "/v1/query":
                self._send(HTTPStatus.OK, answer_query(self.server.advisories, body))
            elif path == "/v1/querybatch":
                self._send(HTTPStatus.OK, answer_batch(self.server.advisories, body))
            else:
                self._error(HTTPStatus.NOT_FOUND, "Not found.")
        except (ValueError, QueryError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))


class OsvServer(ThreadingHTTPServer):
    """The API on (host, port); `port` 0 takes a free one (see `url`)."""

    daemon_threads = True

    def __init__(self, advisories: Advisories, host: str = "127.0.0.1", port: int = 0,
                 log: Any = None) -> None:
        self.advisories = advisories
        self.log = log
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> threading.Thread:
        """Serve on a thread of its own until `shutdown()`."""
        thread = threading.Thread(target=self.serve_forever, name="osv-api", daemon=True)
        thread.start()
        return thread
