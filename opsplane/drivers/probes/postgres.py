"""PostgreSQL probe: connect, SELECT 1, then the figures that predict an outage.

All figures come from the same connection in one statement: connection slots used, the
oldest open transaction, and replication (lag on a replica, connected replicas on a
primary). The probing role sees other sessions' transactions only if it is a superuser or
has pg_monitor; grant it `pg_monitor` for the long-transaction figure to mean anything.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

import psycopg

from opsplane.config.models import PostgresCheck
from opsplane.config.types import format_duration
from opsplane.drivers.probes.base import ProbeFailed, format_elapsed, redact
from opsplane.drivers.probes.resolve import Resolver, default_resolver
from opsplane.health.models import Metric, ProbeResult, State, Threshold, worst
from opsplane.health.targets import CheckTarget, postgres_address

APPLICATION_NAME = "opsplane-probe"

# A caught-up replica (everything received is replayed) has no lag, however long ago the
# primary last wrote: measuring from the last replayed commit alone would make every quiet
# primary look like a lagging replica.
FIGURES_SQL = """
SELECT
  current_setting('server_version') AS version,
  pg_is_in_recovery() AS in_recovery,
  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') AS connections,
  current_setting('max_connections')::int AS max_connections,
  (SELECT extract(epoch FROM max(now() - xact_start))::float8 FROM pg_stat_activity
     WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
       AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
  ) AS longest_transaction,
  CASE WHEN pg_is_in_recovery() THEN
    CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0::float8
         ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END
  END AS replication_lag,
  CASE WHEN NOT pg_is_in_recovery() THEN (SELECT count(*) FROM pg_stat_replication) END
    AS replicas
"""


class PostgresProbe:
    """Checks one PostgreSQL server; `password` is the resolved secret (never shown)."""

    def __init__(
        self,
        host: str,
        port: int,
        check: PostgresCheck,
        *,
        database: str = "postgres",
        user: str = "postgres",
        password: str | None = None,
        connect_timeout: float = 5.0,
        resolver: Resolver | None = None,
    ) -> None:
        self.host = host
        self.resolver = resolver or default_resolver()
        self.port = port
        self.check = check
        self.database = database
        self.user = user
        self.password = password
        # libpq counts whole seconds and treats anything under 2 as 2.
        self.connect_timeout = max(2, math.ceil(connect_timeout))
        self._connections = Threshold(check.connections_warning, check.connections_critical)
        self._transaction = Threshold(check.long_transaction_warning,
                                      check.long_transaction_critical)
        self._lag = Threshold(check.replication_lag_warning, check.replication_lag_critical)

    @property
    def address(self) -> str:
        return postgres_address(self.host, self.port, self.user, self.database)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()

    @classmethod
    def for_target(
        cls, target: CheckTarget, *, password: str | None = None, resolver: Resolver | None = None
    ) -> PostgresProbe:
        if not isinstance(target.check, PostgresCheck):
            raise TypeError(f"{target.id} is not a postgres check")
        return cls(
            target.host, target.port or 5432, target.check,
            database=target.database or "postgres", user=target.user or "postgres",
            password=password, connect_timeout=target.timeout, resolver=resolver,
        )

    async def probe(self) -> ProbeResult:
        """The state by connections, transaction age and replication lag; metrics
        connections, max_connections, connections_ratio, longest_transaction_s, version,
        in_recovery, replication_lag_s (replica) or replicas (primary), latency_ms."""
        started = time.perf_counter()
        host, hostaddr = await self._hosts()
        try:
            conn = await psycopg.AsyncConnection.connect(
                host=host, hostaddr=hostaddr, port=self.port, dbname=self.database, user=self.user,
                password=self.password, connect_timeout=self.connect_timeout,
                application_name=APPLICATION_NAME, autocommit=True,
            )
        except psycopg.OperationalError as exc:
            raise ProbeFailed(connect_failure(str(exc), self.password, self.connect_timeout)) \
                from None
        try:
            await conn.execute("SELECT 1")
            ready = time.perf_counter() - started
            cursor = await conn.execute(FIGURES_SQL)
            row = await cursor.fetchone()
            names = [column.name for column in cursor.description or []]
        except psycopg.Error as exc:
            raise ProbeFailed(_redact(f"query failed: {exc}", self.password)) from None
        finally:
            await conn.close()
        if row is None:
            raise ProbeFailed("the figures query returned nothing", State.UNKNOWN)
        return self.judge(dict(zip(names, row, strict=True)), ready)

    async def _hosts(self) -> tuple[str, str | None]:
        """libpq's `host` and `hostaddr`, the addresses looked up by the resolver so that
        psycopg looks nothing up itself (it would, on the default executor): one attempt
        per address, in order."""
        if self.host.startswith("/"):  # a Unix socket's directory
            return self.host, None
        found = list(dict.fromkeys(info[4][0] for info in
                                   await self.resolver.addresses(self.host, self.port)))
        return ",".join([self.host] * len(found)), ",".join(found)

    def judge(self, figures: dict[str, Any], ready: float) -> ProbeResult:
        """The result for one row of FIGURES_SQL; `ready` is the seconds until SELECT 1."""
        version = str(figures["version"]).split()[0]
        replica = bool(figures["in_recovery"])
        used, limit = int(figures["connections"]), int(figures["max_connections"])
        ratio = used / limit if limit else 0.0
        longest = float(figures["longest_transaction"] or 0.0)
        lag = figures["replication_lag"]
        metrics: dict[str, Metric] = {
            "latency_ms": round(ready * 1000, 3),
            "version": version,
            "in_recovery": replica,
            "connections": used,
            "max_connections": limit,
            "connections_ratio": round(ratio, 4),
            "longest_transaction_s": round(longest, 3),
        }
        findings: list[tuple[State, str]] = []
        state = self._connections.judge(ratio)
        findings.append((state, f"{used}/{limit} connections"
                                + _beyond(state, self.check.connections_warning,
                                          self.check.connections_critical, _percent)))
        state = self._transaction.judge(longest)
        if state is not State.OK:
            findings.append((state, f"a transaction open for {_age(longest)}"
                                    + _beyond(state, self.check.long_transaction_warning,
                                              self.check.long_transaction_critical,
                                              format_duration)))
        if replica:
            metrics["replication_lag_s"] = round(float(lag), 3) if lag is not None else None
            if lag is not None:
                state = self._lag.judge(float(lag))
                findings.append((state, f"replication lag {_age(float(lag))}"
                                        + _beyond(state, self.check.replication_lag_warning,
                                                  self.check.replication_lag_critical,
                                                  format_duration)))
        else:
            metrics["replicas"] = int(figures["replicas"] or 0)
        overall = worst(s for s, _ in findings)
        if overall is State.OK:
            role = "replica" if replica else "primary"
            details = ", ".join(text for _, text in findings)
            reason = f"PostgreSQL {version} {role} ready in {format_elapsed(ready)}, {details}"
        else:
            reason = ", ".join(text for s, text in findings if s is not State.OK)
        return ProbeResult(overall, reason, metrics=metrics)


_QUOTED = r'"[^"]*"'
_KNOWN_FAILURES = [
    (re.compile(r"Connection refused"), lambda m: "refuses connections"),
    (re.compile(rf"password authentication failed for user {_QUOTED}"), lambda m: m.group(0)),
    (re.compile(rf"database {_QUOTED} does not exist"), lambda m: m.group(0)),
    (re.compile(rf"role {_QUOTED} does not exist"), lambda m: m.group(0)),
    (re.compile(r"no pg_hba\.conf entry for [^\n]*"), lambda m: m.group(0).rstrip(".")),
    (re.compile(r"(sorry, too many clients already|remaining connection slots are reserved)"),
     lambda m: "no connection slots left (max_connections reached)"),
    (re.compile(r"the database system is (starting up|shutting down|in recovery mode)"),
     lambda m: m.group(0)),
    (re.compile(r"(could not translate host name|Name or service not known|"
                r"nodename nor servname)"), lambda m: "host name does not resolve"),
    (re.compile(r"No route to host|Network is unreachable"), lambda m: "host unreachable"),
    (re.compile(r"[Cc]onnection reset by peer"), lambda m: "connection reset by peer"),
]


def connect_failure(message: str, password: str | None, connect_timeout: float) -> str:
    """A short reason for a psycopg connection error message; the password never appears."""
    for pattern, describe in _KNOWN_FAILURES:
        match = pattern.search(message)
        if match:
            return _redact(describe(match), password)
    if "timeout expired" in message:
        return f"no answer within {connect_timeout:g} s"
    # Otherwise the server's own words: the last line that says what failed.
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = lines[-1] if lines else "connection failed"
    text = re.sub(r"^(connection failed: )?(connection to server at [^:]*failed: )?", "", text)
    text = re.sub(r"^(FATAL|ERROR):\s+", "", text)
    return _redact(text, password)[:200]  # a password cut in two would not be found


def _redact(text: str, password: str | None) -> str:
    return redact(text, (password,))


def _beyond(state: State, warning: float, critical: float, show: Any) -> str:
    if state is State.OK:
        return ""
    limit = critical if state is State.CRITICAL else warning
    return f" ({state.value.lower()} at {show(limit)})"


def _percent(value: float) -> str:
    return f"{value:.0%}"


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
