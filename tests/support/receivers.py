"""Receivers of notifications for the channel tests: a recording HTTP server that plays Slack,
PagerDuty or a webhook endpoint (failing on cue), and a real SMTP server (aiosmtpd) with
STARTTLS and login."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Answer:
    """How the receiver answers one request; `delay` first (longer than the client's timeout
    plays a receiver that hangs)."""

    status: int = 202
    body: bytes = b'{"status":"success"}'
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


Plan = Callable[[int], Answer]  # request number (from 0) -> answer
# request number and the request itself -> answer: a receiver that answers by what it is sent
# (a gateway refusing one phone number)
RequestPlan = Callable[[int, "Received"], Answer]


@dataclass
class _State:
    plan: Plan
    by_request: RequestPlan | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Received] = field(default_factory=list)
    count: int = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: don't wait on delayed ACKs
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with state.lock:
            number = state.count
            state.count += 1
        headers = {k.lower(): v for k, v in self.headers.items()}
        if state.by_request is not None:
            answer = state.by_request(number, Received(self.path, headers, body, 0))
        else:
            answer = state.plan(number)
        if answer.delay:
            time.sleep(answer.delay)
        with state.lock:
            state.requests.append(Received(self.path, headers, body, answer.status))
        try:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def always(answer: Answer) -> Plan:
    return lambda number: answer


def failing_first(count: int, failure: Answer, then: Answer | None = None) -> Plan:
    """The first `count` requests get `failure`, the rest `then` (202 by default)."""
    ok = then or Answer()
    return lambda number: failure if number < count else ok


class RecordingReceiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers by its plan."""

    def __init__(self, plan: Plan | None = None, *, by_request: RequestPlan | None = None) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = _State(plan or always(Answer()), by_request)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[Received]:
        with self._server.state.lock:
            return list(self._server.state.requests)

    @property
    def arrivals(self) -> int:
        """Requests that arrived, including those still being answered (`requests` lists a
        request once its answer is decided, after any delay)."""
        with self._server.state.lock:
            return self._server.state.count

    @property
    def accepted(self) -> list[Received]:
        """Requests answered with 2xx: what the receiver took."""
        return [r for r in self.requests if 200 <= r.status < 300]

    def set_plan(self, plan: Plan) -> None:
        self._server.state.plan = plan

    def __enter__(self) -> RecordingReceiver:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class MailServer:
    """A real SMTP server (aiosmtpd) on loopback that requires STARTTLS before login and mail;
    `messages` holds what it accepted, parsed."""

    def __init__(self, cert_file: Path, key_file: Path, *, port: int,
                 username: str = "alerts", password: str = "") -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.messages: list[Any] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.port = port
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        outer = self

        class _Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                from email import message_from_bytes, policy

                outer.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                outer.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 Message accepted"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            ok = (isinstance(data, LoginPassword) and data.login.decode() == username
                  and data.password.decode() == password)
            return AuthResult(success=ok, handled=False)

        self._controller = Controller(
            _Handler(), hostname="127.0.0.1", port=port, tls_context=context,
            require_starttls=True, authenticator=authenticate, auth_require_tls=True,
            auth_required=bool(password),
        )

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._controller.stop()
