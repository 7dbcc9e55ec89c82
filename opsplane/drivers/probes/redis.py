"""Redis probe: AUTH, PING and INFO over a minimal RESP client, one connection per run.

A client library would add connection pools and retries we do not want in a probe (a retry
hides the very failure we are looking for), so this speaks the three commands itself and
pipelines them: one round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any

from opsplane.config.models import RedisCheck
from opsplane.drivers.probes.base import ProbeFailed, format_elapsed, redact
from opsplane.drivers.probes.resolve import Resolver, default_resolver
from opsplane.health.models import Metric, ProbeResult, State, Threshold, worst
from opsplane.health.targets import CheckTarget, host_port

# Below this many lookups the hit ratio says more about a quiet cache than a cold one.
MIN_LOOKUPS_FOR_HIT_RATIO = 100
_MAX_REPLY = 16 * 1024 * 1024
# "ERR unknown command 'AUTH', with args beginning with: 'the-password' "
_ARGS_REPEATED = re.compile(r", with args beginning with:.*", re.DOTALL)


class RedisError(Exception):
    """An error reply (-ERR ...) from the server."""


class RedisProbe:
    """Checks one Redis server; `password` is the resolved secret (sent, never shown)."""

    def __init__(
        self,
        host: str,
        port: int,
        check: RedisCheck,
        *,
        password: str | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.host = host
        self.resolver = resolver or default_resolver()
        self.port = port
        self.check = check
        self.password = password
        self._memory = Threshold(check.memory_warning, check.memory_critical)
        self._hit_ratio = Threshold(check.hit_ratio_warning, None, higher_is_worse=False)

    @property
    def address(self) -> str:
        return f"redis://{host_port(self.host, self.port)}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()

    @classmethod
    def for_target(
        cls, target: CheckTarget, *, password: str | None = None, resolver: Resolver | None = None
    ) -> RedisProbe:
        if not isinstance(target.check, RedisCheck):
            raise TypeError(f"{target.id} is not a redis check")
        return cls(target.host, target.port or 6379, target.check, password=password,
                   resolver=resolver)

    async def probe(self) -> ProbeResult:
        """The state by memory use and hit ratio; metrics used_memory, maxmemory, memory_ratio,
        hit_ratio, connected_clients, version, role, latency_ms."""
        started = time.perf_counter()
        info = await self.fetch_info()
        return self.judge(info, time.perf_counter() - started)

    async def fetch_info(self) -> dict[str, str]:
        """INFO's fields, after AUTH (when there is a password) and PING succeeded."""
        reader, writer = await self.resolver.open_connection(self.host, self.port)
        try:
            commands: list[tuple[str, ...]] = [("PING",), ("INFO",)]
            if self.password is not None:
                commands.insert(0, ("AUTH", self.password))
            writer.write(b"".join(encode_command(*c) for c in commands))
            replies = [await read_reply(reader) for _ in commands]
        finally:
            writer.transport.abort()  # we are done talking; no goodbye to wait for
        if self.password is not None:
            auth = replies.pop(0)
            if isinstance(auth, RedisError):
                raise ProbeFailed(f"authentication failed: {self._quoted(str(auth))}")
        pong, info = replies
        if isinstance(pong, RedisError):
            message = str(pong)
            if message.startswith("NOAUTH"):
                raise ProbeFailed("authentication required: set the password of this cache")
            if message.startswith("LOADING"):
                raise ProbeFailed("loading its dataset into memory")
            raise ProbeFailed(f"PING failed: {message}")
        if isinstance(info, RedisError) or not isinstance(info, bytes):
            raise ProbeFailed(f"INFO failed: {info}", State.UNKNOWN)
        return parse_info(info.decode("utf-8", errors="replace"))

    def _quoted(self, message: str) -> str:
        """An error reply to AUTH as a reason: a server that does not know AUTH repeats its
        arguments (the password, cut at 128 characters), so that part is left out, and the
        password is replaced wherever else it appears."""
        return redact(_ARGS_REPEATED.sub("", message).rstrip(), self.secrets)

    def judge(self, info: dict[str, str], elapsed: float) -> ProbeResult:
        """The result for the INFO fields `info`, read in `elapsed` seconds."""
        used = _int(info.get("used_memory"))
        maxmemory = _int(info.get("maxmemory"))
        hits = _int(info.get("keyspace_hits"))
        misses = _int(info.get("keyspace_misses"))
        lookups = hits + misses
        hit_ratio = hits / lookups if lookups else None
        version = info.get("redis_version", "?")
        role = info.get("role", "?")
        metrics: dict[str, Metric] = {
            "latency_ms": round(elapsed * 1000, 3),
            "used_memory": used,
            "maxmemory": maxmemory if maxmemory > 0 else "unlimited",
            "memory_ratio": round(used / maxmemory, 4) if maxmemory > 0 else None,
            "hit_ratio": round(hit_ratio, 4) if hit_ratio is not None else None,
            "connected_clients": _int(info.get("connected_clients")),
            "version": version,
            "role": role,
        }
        findings: list[tuple[State, str]] = []
        if maxmemory > 0:
            ratio = used / maxmemory
            state = self._memory.judge(ratio)
            text = f"memory {ratio:.0%} of {_bytes(maxmemory)}"
            if state is not State.OK:
                limit = self.check.memory_critical if state is State.CRITICAL \
                    else self.check.memory_warning
                text += f" ({state.value.lower()} at {limit:.0%})"
            findings.append((state, text))
        else:
            findings.append((State.OK, f"memory {_bytes(used)}, no maxmemory"))
        if (hit_ratio is not None and self.check.hit_ratio_warning is not None
                and lookups >= MIN_LOOKUPS_FOR_HIT_RATIO):
            state = self._hit_ratio.judge(hit_ratio)
            text = f"hit ratio {hit_ratio:.0%}"
            if state is not State.OK:
                text += f" (warning at {self.check.hit_ratio_warning:.0%})"
            findings.append((state, text))
        state = worst(s for s, _ in findings)
        if state is State.OK:
            details = ", ".join(text for _, text in findings)
            reason = f"Redis {version} {role} ready in {format_elapsed(elapsed)}, {details}"
        else:
            reason = ", ".join(text for s, text in findings if s is not State.OK)
        return ProbeResult(state, reason, metrics=metrics)


# --- RESP ---------------------------------------------------------------------------------


def encode_command(*args: str) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


async def read_reply(reader: asyncio.StreamReader) -> Any:
    """One RESP2 reply: str, int, bytes, None, list, or a RedisError (returned, not raised)."""
    try:
        line = await reader.readline()
    except ValueError:  # no line end within the stream's limit: not RESP
        raise ProbeFailed("not a Redis server (it answered with a very long line)") from None
    if not line:
        raise ProbeFailed("connection closed by the server before it answered")
    kind, rest = line[:1], line[1:-2]
    if not line.endswith(b"\r\n"):
        kind = b"?"  # every RESP line ends in CRLF
    if kind == b"+":
        return rest.decode("utf-8", errors="replace")
    if kind == b"-":
        return RedisError(rest.decode("utf-8", errors="replace"))
    try:
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            if size > _MAX_REPLY:
                raise ProbeFailed(f"reply of {size} bytes is too large", State.UNKNOWN)
            try:
                return (await reader.readexactly(size + 2))[:-2]
            except asyncio.IncompleteReadError:
                raise ProbeFailed("connection closed by the server in the middle of a reply") \
                    from None
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [await read_reply(reader) for _ in range(count)]
    except ValueError:
        pass
    shown = line[:40].decode("latin-1").strip()
    raise ProbeFailed(f"not a Redis server (it answered {shown!r})")


def parse_info(text: str) -> dict[str, str]:
    """INFO's `field:value` lines as a mapping (section headers and blanks skipped)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, sep, value = line.partition(":")
            if sep:
                fields[name] = value.strip()
    return fields


def _int(value: str | None) -> int:
    if value is None:
        return 0
    with contextlib.suppress(ValueError):
        return int(value)
    return 0


def _bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
