"""PgBouncer probe: its admin console's SHOW POOLS, SHOW STATS and SHOW DATABASES, judged.

Three figures predict that clients will time out on the pool: clients waiting for a server
connection (`cl_waiting`), the pool's active server connections against its size, and the
average time a transaction waited for a server: from PgBouncer's totals between this run and
the last when they moved, else from its last stats_period (`maintenance/pools.py`). The admin
console speaks only the simple query protocol: no statement is prepared or given parameters.
"""

from __future__ import annotations

import math
import time
from typing import Any

import psycopg

from opsplane.config.models import PgBouncerCheck
from opsplane.config.types import format_duration
from opsplane.drivers.probes.base import ProbeFailed, format_elapsed, redact
from opsplane.drivers.probes.postgres import connect_failure
from opsplane.health.models import Metric, ProbeResult, State, Threshold, worst
from opsplane.health.targets import CheckTarget, host_port
from opsplane.maintenance.pools import ADMIN_DATABASE, Totals, average_waits, pool_figures, stats_totals


class PgBouncerProbe:
    """Checks one PgBouncer; `password` is its admin user's resolved secret (never shown)."""

    def __init__(
        self,
        host: str,
        port: int,
        check: PgBouncerCheck,
        *,
        password: str | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.check, self.password = host, port, check, password
        self.connect_timeout = max(2, math.ceil(connect_timeout))
        self._waiting = Threshold(check.waiting_warning, check.waiting_critical)
        self._use = Threshold(check.pool_use_warning, check.pool_use_critical)
        self._wait = Threshold(check.wait_warning, check.wait_critical)
        self._last: Totals | None = None

    @property
    def address(self) -> str:
        return f"pgbouncer://{self.check.admin_user}@{host_port(self.host, self.port)}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.password,) if self.password else ()

    @classmethod
    def for_target(cls, target: CheckTarget, *, password: str | None = None) -> PgBouncerProbe:
        if not isinstance(target.check, PgBouncerCheck):
            raise TypeError(f"{target.id} is not a pgbouncer check")
        return cls(
            target.host, target.port or 6432, target.check, password=password, connect_timeout=target.timeout
        )

    async def probe(self) -> ProbeResult:
        """The state by waiting clients, pool use and average wait; metrics clients_waiting,
        clients_active, servers_active, pool_size, pool_use, max_wait_s, avg_wait_ms, pools,
        latency_ms."""
        started = time.perf_counter()
        try:
            conn = await psycopg.AsyncConnection.connect(
                host=self.host,
                port=self.port,
                dbname=ADMIN_DATABASE,
                user=self.check.admin_user,
                password=self.password,
                connect_timeout=self.connect_timeout,
                autocommit=True,
                prepare_threshold=None,
            )
        except psycopg.OperationalError as exc:
            raise ProbeFailed(connect_failure(str(exc), self.password, self.connect_timeout)) from None
        try:
            ready = time.perf_counter() - started
            pools = await _show(conn, "SHOW POOLS")
            stats = await _show(conn, "SHOW STATS")
            databases = await _show(conn, "SHOW DATABASES")
        except psycopg.Error as exc:
            raise ProbeFailed(redact(f"PgBouncer refused SHOW: {exc}", self.secrets)) from None
        finally:
            await conn.close()
        totals = stats_totals(stats)
        waits = average_waits(totals, self._last)
        self._last = totals
        return self.judge(pools, databases, waits, ready)

    def judge(
        self,
        pools_rows: list[dict[str, Any]],
        databases: list[dict[str, Any]],
        waits: dict[str, float | None],
        ready: float,
    ) -> ProbeResult:
        """The result for one look: `waits` are the databases' average waits in seconds."""
        only = self.check.database
        pools = pool_figures(pools_rows, databases, only=only)
        sizes = {str(r.get("name")): int(r.get("pool_size") or 0) for r in databases}
        sizes.pop(ADMIN_DATABASE, None)
        if only is not None and only not in sizes:
            raise ProbeFailed(
                f"PgBouncer has no database {only!r} (its databases: {', '.join(sorted(sizes)) or 'none'})",
                State.UNKNOWN,
            )
        waiting = sum(p.clients_waiting for p in pools)
        busiest = max(pools, key=lambda p: p.use, default=None)
        known_waits = [w for db, w in waits.items() if w is not None and (only is None or db == only)]
        wait = max(known_waits, default=None)
        metrics: dict[str, Metric] = {
            "latency_ms": round(ready * 1000, 3),
            "pools": len(pools),
            "clients_waiting": waiting,
            "clients_active": sum(p.clients_active for p in pools),
            "servers_active": sum(p.servers_active for p in pools),
            # a database no client has used yet has no pool: its size as configured
            "pool_size": sum(p.pool_size for p in pools) or (sizes[only] if only else sum(sizes.values())),
            "pool_use": round(busiest.use, 4) if busiest else 0.0,
            "max_wait_s": round(max((p.max_wait for p in pools), default=0.0), 3),
            "avg_wait_ms": round(wait * 1000, 3) if wait is not None else None,
        }
        findings: list[tuple[State, str]] = []
        state = self._waiting.judge(waiting)
        findings.append(
            (
                state,
                f"{waiting} clients waiting"
                + _beyond(state, self.check.waiting_warning, self.check.waiting_critical, str),
            )
        )
        if busiest is not None:
            state = self._use.judge(busiest.use)
            findings.append(
                (
                    state,
                    f"pool {busiest.name} {busiest.servers_active}/{busiest.pool_size} in use"
                    + _beyond(
                        state, self.check.pool_use_warning, self.check.pool_use_critical, lambda v: f"{v:.0%}"
                    ),
                )
            )
        if wait is not None:
            state = self._wait.judge(wait)
            findings.append(
                (
                    state,
                    f"average wait {format_elapsed(wait)}"
                    + _beyond(state, self.check.wait_warning, self.check.wait_critical, format_duration),
                )
            )
        overall = worst(s for s, _ in findings)
        if overall is State.OK:
            reason = f"PgBouncer ready in {format_elapsed(ready)}, {len(pools)} pools, " + ", ".join(
                text for _, text in findings
            )
        else:
            reason = ", ".join(text for s, text in findings if s is not State.OK)
        return ProbeResult(overall, reason, metrics=metrics)


async def _show(conn: psycopg.AsyncConnection[Any], command: str) -> list[dict[str, Any]]:
    cursor = await conn.execute(command)
    names = [column.name for column in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]


def _beyond(state: State, warning: float, critical: float | None, show: Any) -> str:
    if state is State.OK:
        return ""
    return f" ({state.value.lower()} at {show(critical if state is State.CRITICAL else warning)})"
