"""What a PostgreSQL database holds, as verification compares it: every user table and its
exact row count, read in one snapshot, with the WAL position that snapshot corresponds to."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from opsplane.drivers.backup.base import BackupEngineError

_TABLES = """
    SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    ORDER BY 1, 2
"""


def count_rows(connection: psycopg.Connection[Any]) -> dict[str, int]:
    """Each user table (`schema.table`) and its exact row count, in the connection's current
    transaction (so in one snapshot when that is REPEATABLE READ)."""
    counts = {}
    # a count over a large table passes JIT's cost threshold, and compiling costs more than it saves
    in_transaction = connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    connection.execute("SET LOCAL jit = off" if in_transaction else "SET jit = off")
    for schema, table in connection.execute(_TABLES).fetchall():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        counts[f"{schema}.{table}"] = int(one(connection, query))
    return counts


def counted_at(connection: psycopg.Connection[Any]) -> tuple[str, dict[str, int]]:
    """The row counts of one snapshot and the WAL insert position taken as the snapshot began:
    recovery to that position (`--type=lsn`) replays every transaction the counts saw. A commit
    racing the snapshot's start can fall on the other side; verification of a quiet moment is
    exact."""
    # In autocommit mode psycopg sends our BEGIN as it is, so the isolation level applies.
    connection.autocommit = True
    try:
        connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        lsn = str(one(connection, "SELECT pg_current_wal_insert_lsn()"))
        counts = count_rows(connection)
        connection.execute("COMMIT")
    except psycopg.Error as exc:
        raise BackupEngineError(f"counting rows: {str(exc).strip()}") from None
    return lsn, counts


def one(connection: psycopg.Connection[Any], query: str | sql.Composed) -> Any:
    """The single value `query` answers."""
    row = connection.execute(query).fetchone()  # type: ignore[arg-type]
    if row is None:
        raise BackupEngineError(f"PostgreSQL answered no row to {query!r}")
    return row[0]
