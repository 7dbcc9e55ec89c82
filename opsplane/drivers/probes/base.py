"""The probe boundary: one interface, one timeout rule, one translation of failures.

A probe is any object with `async def probe(self) -> ProbeResult` and an `address` naming
what it looks at. `run_probe` is the only caller: it applies the timeout, measures the
duration, and turns every exception into a CRITICAL or UNKNOWN result with a reason a person
can act on, so nothing above this line ever sees a traceback from a target. Every result that
is not OK names what was probed ("refuses connections — 127.0.0.1:5432"), so the health
table, the events, the dashboard and a dependency's explanation all say where to look.

A probe's `secrets` (the password, token or secret environment values it was built with)
never leave it: each probe replaces them with *** in what it quotes before cutting that text
short, and `run_probe` replaces any that are left in the reason and the metrics, whatever
path the result took (a server's error message, an exception's text).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import replace
from typing import Protocol

from opsplane.health.models import ProbeResult, State


class Probe(Protocol):
    @property
    def address(self) -> str | None:
        """What the probe looks at, as a person names it: `host:port`, a URL, a database's
        URL without its password, a command line; None when its reasons say it all."""
        ...

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret values the probe was built with; never shown in a result."""
        ...

    async def probe(self) -> ProbeResult:
        """Look at the target once and say what was found."""
        ...


class ProbeFailed(Exception):
    """Raised inside a probe to end it with a definite state and reason."""

    def __init__(self, reason: str, state: State = State.CRITICAL):
        super().__init__(reason)
        self.reason = reason
        self.state = state


class _Waiting:
    """What the current run of a probe is waiting on, if it says (`waiting_on`)."""

    __slots__ = ("what",)

    def __init__(self) -> None:
        self.what: str | None = None


_WAITING: ContextVar[_Waiting | None] = ContextVar("opsplane_probe_waiting", default=None)


@contextlib.contextmanager
def waiting_on(what: str) -> Iterator[None]:
    """Inside a probe: the run is waiting on `what` ("name lookup for db.internal") until the
    block ends. If the run's timeout ends it there, its reason is "`what` timed out after 5 s"
    rather than "no answer within 5 s"."""
    waiting = _WAITING.get()
    if waiting is None:  # not run by run_probe
        yield
        return
    waiting.what = what
    yield  # an exception (the timeout's cancellation) leaves `what` for run_probe to read
    waiting.what = None


async def run_probe(probe: Probe, timeout: float) -> ProbeResult:
    """Run `probe` once within `timeout` seconds; never raises for a target's failure.

    A result that is not OK has its reason end with " — " and the probe's address, unless it
    names it already. The probe's secrets are replaced with *** in the reason and the metrics.
    """
    started = time.perf_counter()
    waiting = _Waiting()
    token = _WAITING.set(waiting)
    try:
        async with asyncio.timeout(timeout):
            result = await probe.probe()
    except TimeoutError:
        what = waiting.what
        result = ProbeResult(State.CRITICAL, f"{what} timed out after {_seconds(timeout)}" if what
                             else f"no answer within {_seconds(timeout)}")
    except ProbeFailed as exc:
        result = ProbeResult(exc.state, exc.reason)
    except Exception as exc:  # noqa: BLE001 - the boundary: every failure becomes a state
        result = ProbeResult(*describe_failure(exc))
    finally:
        _WAITING.reset(token)
    # A probe that timed its own exchange knows better than this task, which may have
    # resumed well after the exchange ended if the loop was busy with other checks.
    result = replace(result, reason=naming(result, probe.address),
                     duration=result.duration or time.perf_counter() - started)
    secrets = probe.secrets
    if not secrets:
        return result
    return replace(result, reason=redact(result.reason, secrets),
                   metrics={name: redact(value, secrets) if isinstance(value, str) else value
                            for name, value in result.metrics.items()})


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every occurrence of each secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def naming(result: ProbeResult, address: str | None) -> str:
    """`result`'s reason, followed by " — address" when it is not OK and does not name it.

    A dash rather than parentheses: many reasons already end with some ("6/100 connections
    (warning at 5%)").
    """
    if result.state is State.OK or not address or address in result.reason:
        return result.reason
    return f"{result.reason} — {address}"


def describe_failure(exc: BaseException) -> tuple[State, str]:
    """A state and a short reason for an exception raised while talking to a target."""
    if isinstance(exc, ConnectionRefusedError):
        return State.CRITICAL, "refuses connections"
    if isinstance(exc, socket.gaierror):
        return State.CRITICAL, f"host name does not resolve ({exc.strerror})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return State.CRITICAL, f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return State.CRITICAL, f"TLS handshake failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionResetError):
        return State.CRITICAL, "connection reset by peer"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return State.CRITICAL, "host unreachable"
    if isinstance(exc, TimeoutError):
        return State.CRITICAL, "timed out"
    if isinstance(exc, OSError):
        return State.CRITICAL, exc.strerror or str(exc) or type(exc).__name__
    return State.UNKNOWN, f"probe error: {type(exc).__name__}: {exc}"


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:g} s"


def format_elapsed(seconds: float) -> str:
    """A short duration for a reason: "0.4 ms", "12 ms", "1.25 s"."""
    ms = seconds * 1000
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{seconds:.3g} s"
