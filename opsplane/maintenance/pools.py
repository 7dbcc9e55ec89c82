"""PgBouncer's pools as figures, and what they say about the pool's size: pure functions over
the rows of SHOW POOLS, SHOW STATS, SHOW DATABASES and SHOW CONFIG.

The `pgbouncer` probe judges one look (`pool_figures`, `average_waits`); `opsplane db pools`
looks several times over a few seconds (`Sampled`) and turns the peaks and the average wait
into advice (`advise`): raise the pool when clients queue for it, and only as far as
PostgreSQL's max_connections leaves room; lower it when it stands idle; raise max_client_conn
when clients come near it.

PgBouncer refreshes SHOW STATS once every `stats_period` (60 s by default). The average wait
of a transaction for a server is the growth of `total_wait_time` (microseconds clients waited)
over the growth of `total_xact_count` between two looks when the totals moved in between;
otherwise the last period's own figures, `avg_wait_time` (microseconds waited per second) over
`avg_xact_count` (transactions per second). So the figures are as fresh as `stats_period`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsplane.reports.models import Finding, Severity

ADMIN_DATABASE = "pgbouncer"


@dataclass(frozen=True)
class PoolFigures:
    """One pool (a database and user pair) at one look."""

    database: str
    user: str
    pool_size: int
    clients_active: int
    clients_waiting: int
    servers_active: int
    servers_idle: int
    max_wait: float  # seconds the oldest waiting client has waited
    mode: str

    @property
    def name(self) -> str:
        return f"{self.database}/{self.user}"

    @property
    def use(self) -> float:
        """Active server connections against the pool's size."""
        return self.servers_active / self.pool_size if self.pool_size > 0 else 0.0


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def pool_figures(
    pools: Iterable[Mapping[str, Any]], databases: Iterable[Mapping[str, Any]], *, only: str | None = None
) -> list[PoolFigures]:
    """The pools of SHOW POOLS with their size from SHOW DATABASES; the admin console's own
    pool is left out, and every other database's when `only` names one."""
    sizes = {str(row.get("name")): _int(row.get("pool_size")) for row in databases}
    found = []
    for row in pools:
        database = str(row.get("database"))
        if database == ADMIN_DATABASE or (only is not None and database != only):
            continue
        wait = _int(row.get("maxwait")) + _int(row.get("maxwait_us")) / 1e6
        found.append(
            PoolFigures(
                database,
                str(row.get("user")),
                sizes.get(database, 0),
                _int(row.get("cl_active")),
                _int(row.get("cl_waiting")),
                _int(row.get("sv_active")),
                _int(row.get("sv_idle")),
                wait,
                str(row.get("pool_mode") or ""),
            )
        )
    return found


# database -> (total_xact_count, total_wait_time in µs, avg_xact_count per s, avg_wait_time in µs
# per s, avg_xact_time in µs per transaction)
Totals = dict[str, tuple[int, int, int, int, int]]


def stats_totals(stats: Iterable[Mapping[str, Any]]) -> Totals:
    """Each database's transactions and microseconds waited, so far and per second over the
    last stats_period, from SHOW STATS."""
    return {
        str(row.get("database")): (
            _int(row.get("total_xact_count")),
            _int(row.get("total_wait_time")),
            _int(row.get("avg_xact_count")),
            _int(row.get("avg_wait_time")),
            _int(row.get("avg_xact_time")),
        )
        for row in stats
        if row.get("database") != ADMIN_DATABASE
    }


def average_waits(now: Totals, before: Totals | None = None) -> dict[str, float | None]:
    """Each database's average wait of a transaction for a server, in seconds: between the two
    looks when the totals moved, else over PgBouncer's last stats_period; None when no
    transaction ran in either."""
    found: dict[str, float | None] = {}
    for database, (xacts, waited, xacts_per_s, waited_per_s, _) in now.items():
        xacts0, waited0 = (before or {}).get(database, (0, 0, 0, 0, 0))[:2]
        if before is not None and xacts > xacts0 and waited >= waited0:
            found[database] = (waited - waited0) / 1e6 / (xacts - xacts0)
        elif xacts_per_s > 0:
            found[database] = waited_per_s / 1e6 / xacts_per_s
        else:
            found[database] = None
    return found


# --- several looks ----------------------------------------------------------------------


@dataclass
class Sampled:
    """What several looks at one PgBouncer found: per pool its peaks, per database its wait,
    and the settings that bound the pool."""

    looks: int = 0
    seconds: float = 0.0
    peak_waiting: dict[str, int] = field(default_factory=dict)
    peak_active: dict[str, int] = field(default_factory=dict)
    peak_max_wait: dict[str, float] = field(default_factory=dict)
    pool_size: dict[str, int] = field(default_factory=dict)
    database_of: dict[str, str] = field(default_factory=dict)
    peak_clients: int = 0
    waits: dict[str, float | None] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)  # transactions per second
    busy: dict[str, float] = field(default_factory=dict)  # server connections busy on average
    ran: dict[str, bool] = field(default_factory=dict)

    def add(self, pools: Sequence[PoolFigures]) -> None:
        self.looks += 1
        for pool in pools:
            self.pool_size[pool.name] = pool.pool_size
            self.database_of[pool.name] = pool.database
            self.peak_waiting[pool.name] = max(self.peak_waiting.get(pool.name, 0), pool.clients_waiting)
            self.peak_active[pool.name] = max(self.peak_active.get(pool.name, 0), pool.servers_active)
            self.peak_max_wait[pool.name] = max(self.peak_max_wait.get(pool.name, 0.0), pool.max_wait)
        self.peak_clients = max(self.peak_clients, sum(p.clients_active + p.clients_waiting for p in pools))

    def finish(self, first: Totals, last: Totals, seconds: float) -> None:
        """The average waits between the first look and the last; the transaction rate and the
        server connections busy on average (rate × mean transaction time, Little's law) from
        PgBouncer's last stats_period, since its totals move only once a period."""
        self.seconds = seconds
        self.waits = average_waits(last, first if self.looks > 1 else None)
        for db, (xacts, _, per_s, _, xact_us) in last.items():
            self.rates[db] = float(per_s)
            self.busy[db] = per_s * xact_us / 1e6
            self.ran[db] = per_s > 0 or xacts > first.get(db, (0, 0, 0, 0, 0))[0]


@dataclass(frozen=True)
class Limits:
    """What bounds the pools: PgBouncer's settings and PostgreSQL's connections."""

    default_pool_size: int
    max_client_conn: int
    max_connections: int | None = None  # PostgreSQL's, when it could be read
    reserved_connections: int = 3  # superuser_reserved_connections
    server_connections: int | None = None  # PostgreSQL's client connections now


@dataclass(frozen=True)
class PoolRules:
    """When the advice speaks: a pool is short when clients waited this long on average or
    this many queued at once; it is oversized when its peak use stays under `idle_use`."""

    wait: float = 0.010
    waiting: int = 1
    idle_use: float = 0.25
    clients_share: float = 0.80


def advise(
    sampled: Sampled, limits: Limits, rules: PoolRules = PoolRules()
) -> tuple[list[str], list[Finding]]:
    """Lines of advice and the findings behind them, from what `sampled` saw."""
    lines: list[str] = []
    findings: list[Finding] = []
    room = None
    if limits.max_connections is not None and limits.server_connections is not None:
        room = limits.max_connections - limits.reserved_connections - limits.server_connections
    asked = 0
    if not sampled.pool_size:  # PgBouncer makes a pool at a database's first client
        lines.append("no pool yet: no client has connected through this PgBouncer since it started; "
                     "nothing to judge")
    for name in sorted(sampled.pool_size):
        size = sampled.pool_size[name]
        waiting = sampled.peak_waiting.get(name, 0)
        active = sampled.peak_active.get(name, 0)
        busy = sampled.busy.get(sampled.database_of[name], 0.0)
        wait = sampled.waits.get(sampled.database_of[name])
        wait_text = f"clients waited on average {_ms(wait)}" if wait is not None else "no transactions ran"
        short = waiting >= rules.waiting and (wait is None or wait >= rules.wait or waiting >= size)
        if short and size > 0:
            new = min(size + waiting, size * 2)
            extra = new - size
            asked += extra
            advice = (
                f"{name}: {wait_text} and {waiting} waited at peak: raise the pool size from {size} to {new}"
            )
            if room is None:
                advice += "; PostgreSQL's max_connections could not be read, check it has room"
                severity: Severity = "warning"
            elif extra <= room:
                advice += (
                    f"; PostgreSQL's max_connections {limits.max_connections} leaves room "
                    f"({room} connections free)"
                )
                severity = "warning"
            else:
                advice += (
                    f"; but PostgreSQL has only {max(room, 0)} connections free of max_connections "
                    f"{limits.max_connections}: raise max_connections first (a restart)"
                )
                severity = "critical"
            lines.append(advice)
            findings.append(
                Finding(
                    severity,
                    f"pool {name}",
                    f"{waiting} clients waited at peak, {wait_text}; "
                    f"raise the pool size from {size} to {new}",
                    {"pool_size": size, "advised": new, "peak_waiting": waiting, "wait_s": wait},
                )
            )
        elif not sampled.ran.get(sampled.database_of[name]):
            lines.append(f"{name}: no transaction ran in the {sampled.seconds:.0f} s watched: "
                         "nothing to judge")
        elif waiting == 0 and (need := max(active, math.ceil(busy))) < size * rules.idle_use \
                and max(need * 2, 2) < size:
            new = max(need * 2, 2)
            lines.append(
                f"{name}: at most {active} of {size} server connections were active ({busy:.1f} busy on "
                f"average) and no client waited: the pool could be {new}"
            )
            findings.append(
                Finding(
                    "info",
                    f"pool {name}",
                    f"peak use {active}/{size}: the pool could be {new}",
                    {"pool_size": size, "advised": new, "peak_active": active},
                )
            )
        else:
            lines.append(
                f"{name}: {wait_text}, at most {waiting} waiting and {active} of {size} server "
                f"connections active: the pool size fits"
            )
    if limits.max_client_conn > 0 and sampled.peak_clients >= limits.max_client_conn * rules.clients_share:
        new = limits.max_client_conn * 2
        lines.append(
            f"{sampled.peak_clients} clients at peak against max_client_conn {limits.max_client_conn}: "
            f"raise max_client_conn to {new}"
        )
        findings.append(
            Finding(
                "warning",
                "max_client_conn",
                f"{sampled.peak_clients} clients at peak of {limits.max_client_conn}: raise it to {new}",
            )
        )
    total = sum(sampled.pool_size.values())
    if (
        limits.max_connections is not None
        and total + asked > limits.max_connections - limits.reserved_connections
    ):
        lines.append(
            f"the pools may open {total + asked} server connections and PostgreSQL allows "
            f"{limits.max_connections - limits.reserved_connections} (max_connections "
            f"{limits.max_connections} less {limits.reserved_connections} reserved)"
        )
        findings.append(
            Finding(
                "warning",
                "max_connections",
                f"pools of {total + asked} connections against "
                f"{limits.max_connections - limits.reserved_connections} PostgreSQL allows",
            )
        )
    return lines, findings


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 10 else f"{math.floor(ms + 0.5):.0f} ms"
