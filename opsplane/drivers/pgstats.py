"""PostgreSQL's own statistics for database care, and the care actions themselves.

`collect` reads, in one read-only connection, what `opsplane db report` judges: per table its
vacuum and analyze times, live and dead tuples, size, transaction id age and the average row
width from `pg_stats` (for the bloat estimate), the indexes with their scans and columns,
pg_stat_statements when it is loaded, the sessions of the database (with whom each waits for,
from `pg_blocking_pids`), and the server's connections against max_connections. Nothing is
judged here: `opsplane.maintenance.report` does that over the values returned.

`vacuum`, `analyze` and `terminate_idle` change things; their callers ask first and record
each as an event. Every statement is built with `psycopg.sql`, never from formatted text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from opsplane.errors import OpsplaneError, UsageError

APPLICATION_NAME = "opsplane-db-care"


class PgStatsError(OpsplaneError):
    """The server could not be reached or refused a statement."""


@dataclass(frozen=True)
class Server:
    """How to reach one database of a server; `password` is the resolved secret."""

    name: str
    host: str
    port: int
    user: str
    dbname: str
    password: str | None = None
    connect_timeout: int = 5

    @property
    def address(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


# pg_stats is a view over every column's statistics: it is summed once per table here rather
# than once for each table in a subquery.
TABLES_SQL = """
WITH widths AS (
  SELECT schemaname, tablename, sum(avg_width)::int AS row_width FROM pg_stats
  WHERE schemaname NOT IN ('pg_catalog', 'information_schema') GROUP BY schemaname, tablename
)
SELECT s.schemaname AS schema, s.relname AS table, s.n_live_tup AS live, s.n_dead_tup AS dead,
       s.n_mod_since_analyze AS modified_since_analyze,
       s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
       age(c.relfrozenxid)::bigint AS xid_age, pg_relation_size(c.oid) AS bytes,
       COALESCE((SELECT option_value::int FROM pg_options_to_table(c.reloptions)
                 WHERE option_name = 'fillfactor'), 100) AS fillfactor,
       COALESCE((SELECT option_value FROM pg_options_to_table(c.reloptions)
                 WHERE option_name = 'autovacuum_enabled'), 'on') NOT IN ('off', 'false', 'no', '0')
         AS autovacuum,
       w.row_width
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
LEFT JOIN widths w ON w.schemaname = s.schemaname AND w.tablename = s.relname
ORDER BY s.schemaname, s.relname
"""

INDEXES_SQL = """
SELECT s.schemaname AS schema, s.relname AS table, s.indexrelname AS index, s.idx_scan AS scans,
       pg_relation_size(s.indexrelid) AS bytes, i.indisunique AS is_unique, i.indisprimary AS is_primary,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS backs_constraint,
       CASE WHEN i.indexprs IS NULL THEN
         ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               WHERE k.n <= i.indnkeyatts ORDER BY k.n)
       ELSE  -- expressions: as the index's definition writes them (dearer, so only for these)
         ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k
               ORDER BY k)
       END AS columns,
       am.amname AS method, pg_get_expr(i.indpred, i.indrelid) AS predicate
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
JOIN pg_class ic ON ic.oid = s.indexrelid
JOIN pg_am am ON am.oid = ic.relam
ORDER BY s.schemaname, s.relname, s.indexrelname
"""

# Only sessions waiting on a lock are asked who blocks them: pg_blocking_pids takes the lock
# manager's locks, so calling it for every session would be the report's own load.
SESSIONS_SQL = """
SELECT pid, usename AS user, application_name AS application, client_addr::text AS client,
       state, wait_event_type, wait_event,
       CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) ELSE '{}'::int[] END AS blocked_by,
       extract(epoch FROM statement_timestamp() - xact_start)::float8 AS transaction_age,
       extract(epoch FROM statement_timestamp() - state_change)::float8 AS state_age,
       extract(epoch FROM statement_timestamp() - query_start)::float8 AS query_age,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND datname = current_database() AND pid <> pg_backend_pid()
ORDER BY pid
"""

SERVER_SQL = """
SELECT statement_timestamp() AS now, current_setting('server_version') AS version,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved_connections,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections,
       current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age,
       (SELECT age(datfrozenxid)::bigint FROM pg_database WHERE datname = current_database())
         AS database_xid_age,
       (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS stats_reset,
       current_setting('shared_preload_libraries') AS preload,
       EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS statements_created
"""

STATEMENTS_SQL = """
SELECT queryid::text AS id, left(regexp_replace(query, '\\s+', ' ', 'g'), 300) AS query, calls,
       total_exec_time AS total_ms, mean_exec_time AS mean_ms, rows
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY {order} DESC LIMIT %s
"""


@contextmanager
def connect(server: Server, *, autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
    """A connection to `server`; PgStatsError with the reason (never the password) otherwise."""
    try:
        conn = psycopg.connect(
            host=server.host,
            port=server.port,
            user=server.user,
            dbname=server.dbname,
            password=server.password,
            connect_timeout=server.connect_timeout,
            application_name=APPLICATION_NAME,
            autocommit=autocommit,
        )
    except psycopg.Error as exc:
        from opsplane.drivers.probes.postgres import connect_failure

        raise PgStatsError(
            f"cannot reach {server.address}: "
            f"{connect_failure(str(exc), server.password, server.connect_timeout)}"
        ) from None
    try:
        yield conn
    finally:
        conn.close()


def rows(
    conn: psycopg.Connection[Any], query: str | sql.Composed, params: Any = None
) -> list[dict[str, Any]]:
    cursor = conn.execute(query, params)  # type: ignore[arg-type]
    if cursor.description is None:
        return []
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def statements_state(server_row: dict[str, Any]) -> str:
    """`loaded` (queryable here), `not_preloaded` (not in shared_preload_libraries) or
    `not_created` (preloaded, but no CREATE EXTENSION in this database)."""
    preload = {name.strip() for name in str(server_row.get("preload") or "").split(",")}
    if "pg_stat_statements" not in preload:
        return "not_preloaded"
    return "loaded" if server_row.get("statements_created") else "not_created"


def collect(server: Server, *, top: int = 10) -> dict[str, Any]:
    """Everything the db report judges, as plain values (datetimes stay datetimes). Read only:
    the whole collection runs in one READ ONLY transaction with a statement timeout."""
    with connect(server, autocommit=False) as conn:
        try:
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SET LOCAL statement_timeout = '30s'")
            conn.execute("SET LOCAL lock_timeout = '5s'")
            found: dict[str, Any] = {"server": rows(conn, SERVER_SQL)[0]}
            found["tables"] = rows(conn, TABLES_SQL)
            found["indexes"] = rows(conn, INDEXES_SQL)
            found["sessions"] = rows(conn, SESSIONS_SQL)
            state = statements_state(found["server"])
            found["statements_state"] = state
            if state == "loaded":
                found["statements_by_total"] = rows(
                    conn, sql.SQL(STATEMENTS_SQL).format(order=sql.SQL("total_exec_time")), (top,)
                )
                found["statements_by_mean"] = rows(
                    conn, sql.SQL(STATEMENTS_SQL).format(order=sql.SQL("mean_exec_time")), (top,)
                )
            conn.rollback()
        except psycopg.Error as exc:
            raise PgStatsError(f"{server.address}: {_message(exc)}") from None
    return found


# --- actions ----------------------------------------------------------------------------


def resolve_table(conn: psycopg.Connection[Any], name: str) -> tuple[str, str]:
    """(schema, table) of `name` ('orders' or 'shop.orders', as `to_regclass` reads it);
    UsageError when the database has no such table."""
    found = rows(
        conn,
        "SELECT n.nspname AS schema, c.relname AS table FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'm', 'p')",
        (name,),
    )
    if not found:
        raise UsageError(f"no table {name!r} in {conn.info.dbname}")
    return str(found[0]["schema"]), str(found[0]["table"])


def vacuum(server: Server, table: str | None = None, *, analyze: bool = False) -> str:
    """VACUUM (with ANALYZE) one table or the whole database; returns what ran."""
    return _maintain(server, "VACUUM (ANALYZE)" if analyze else "VACUUM", table)


def analyze(server: Server, table: str | None = None) -> str:
    """ANALYZE one table or the whole database; returns what ran."""
    return _maintain(server, "ANALYZE", table)


def _maintain(server: Server, command: str, table: str | None) -> str:
    with connect(server) as conn:  # VACUUM cannot run inside a transaction block
        try:
            statement: sql.SQL | sql.Composed = sql.SQL(command)
            if table is not None:
                schema, name = resolve_table(conn, table)
                statement = sql.SQL("{} {}").format(statement, sql.Identifier(schema, name))
            text = statement.as_string(conn)
            conn.execute(statement)
        except psycopg.Error as exc:
            raise PgStatsError(f"{server.address}: {command} failed: {_message(exc)}") from None
    return text


IDLE_SQL = """
SELECT pid, usename AS user, application_name AS application, client_addr::text AS client, state,
       backend_start, extract(epoch FROM statement_timestamp() - state_change)::float8 AS state_age,
       extract(epoch FROM statement_timestamp() - xact_start)::float8 AS transaction_age,
       left(query, 300) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND datname = current_database() AND pid <> pg_backend_pid()
  AND state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND statement_timestamp() - state_change > make_interval(secs => %s)
ORDER BY state_change
"""

# The conditions are checked again as each session is ended: one that ran a statement since
# it was listed, or a pid now given to another backend, is left alone.
TERMINATE_SQL = """
SELECT pid, pg_terminate_backend(pid) AS terminated
FROM pg_stat_activity
WHERE pid = ANY(%s) AND pid <> pg_backend_pid() AND datname = current_database()
  AND state IN ('idle in transaction', 'idle in transaction (aborted)')
  AND statement_timestamp() - state_change > make_interval(secs => %s)
  AND backend_start = ANY(%s)
"""


def idle_in_transaction(server: Server, older_than: float) -> list[dict[str, Any]]:
    """The database's sessions idle in a transaction for longer than `older_than` seconds,
    oldest first; never this connection's own."""
    with connect(server) as conn:
        try:
            return rows(conn, IDLE_SQL, (older_than,))
        except psycopg.Error as exc:
            raise PgStatsError(f"{server.address}: {_message(exc)}") from None


def terminate(server: Server, sessions: list[dict[str, Any]], older_than: float) -> list[int]:
    """pg_terminate_backend for each of `sessions` (as `idle_in_transaction` listed them) that is
    still idle in a transaction for longer than `older_than`; the pids ended."""
    if not sessions:
        return []
    pids = [int(s["pid"]) for s in sessions]
    starts: list[datetime] = [s["backend_start"] for s in sessions]
    with connect(server) as conn:
        try:
            done = rows(conn, TERMINATE_SQL, (pids, older_than, starts))
        except psycopg.Error as exc:
            raise PgStatsError(f"{server.address}: terminating failed: {_message(exc)}") from None
    return sorted(int(r["pid"]) for r in done if r["terminated"])


def _message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    return primary or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
