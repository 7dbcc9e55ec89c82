"""The levels at which the db report calls something a warning or critical (docs/maintenance.md)."""

from __future__ import annotations

from dataclasses import dataclass

from opsplane.reports.models import Severity

DAY = 86400.0


@dataclass(frozen=True)
class Thresholds:
    """Defaults are the manual's; tests and callers may pass others."""

    # dead tuples: share of live + dead, counted only from `min_dead_tuples` on
    dead_ratio_warning: float = 0.20
    dead_ratio_critical: float = 0.50
    min_dead_tuples: int = 1000
    # a table never vacuumed (by hand or autovacuum) once it holds this many rows
    never_vacuumed_rows: int = 10000
    # the last vacuum longer ago than this, while the table has `min_dead_tuples` dead
    vacuum_age_warning: float = 7 * DAY
    # never analyzed from this many rows; analyzed long ago with this share of rows changed since
    never_analyzed_rows: int = 1000
    analyze_age_warning: float = 7 * DAY
    modified_share_warning: float = 0.10
    # estimated bloat: share of the table's size, counted only from `min_bloat_bytes` on
    bloat_ratio_warning: float = 0.30
    bloat_ratio_critical: float = 0.60
    min_bloat_bytes: int = 1024 * 1024
    # transaction ids since the oldest unfrozen one (wraparound is at 2^31)
    xid_age_warning: int = 500_000_000
    xid_age_critical: int = 1_200_000_000
    # an index never scanned, not unique and backing no constraint: a warning from this size on
    unused_index_bytes: int = 1024 * 1024
    # statements by mean time (pg_stat_statements), counted only from `min_calls` calls
    slow_mean_warning_ms: float = 500.0
    slow_mean_critical_ms: float = 5000.0
    min_calls: int = 1
    # a session waiting for a lock, by how long its statement has been waiting
    lock_wait_warning: float = 30.0
    lock_wait_critical: float = 300.0
    # a session idle in a transaction, by how long it has been idle
    idle_in_transaction_warning: float = 60.0
    idle_in_transaction_critical: float = 300.0
    # client connections against max_connections
    connections_warning: float = 0.80
    connections_critical: float = 0.95
    # how many statements each top list holds
    top: int = 10


def judged(value: float, warning: float, critical: float) -> Severity | None:
    """How bad `value` is against a warning and a critical level (higher is worse)."""
    if value >= critical:
        return "critical"
    if value >= warning:
        return "warning"
    return None
