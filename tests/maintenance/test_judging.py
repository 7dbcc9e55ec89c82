"""The pure judging of database care: the bloat estimate, the lock tree, duplicate indexes,
the levels of each finding, and the pool advice with and without room in PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from opsplane.maintenance import pools, sessions, tables
from opsplane.maintenance.thresholds import Thresholds

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def table(**given: Any) -> dict[str, Any]:
    row = {"schema": "public", "table": "t", "live": 100_000, "dead": 0, "bytes": 0, "row_width": 100,
           "fillfactor": 100, "last_vacuum": NOW, "last_autovacuum": None, "last_analyze": NOW,
           "last_autoanalyze": None, "modified_since_analyze": 0, "xid_age": 1000, "autovacuum": True}
    return {**row, **given}


def findings(**given: Any) -> list[tuple[str, str]]:
    rows = tables.table_rows([table(**given)], NOW)
    return [(f.severity, f.what) for f in tables.judge_tables(rows, Thresholds())]


def test_the_bloat_estimate_counts_the_pages_live_rows_need() -> None:
    # 100-byte rows take 24 + 104 + 4 = 132 bytes: 61 to an 8 kB page, 1640 pages for 100,000 rows
    needed = 1640 * 8192
    assert tables.estimated_bloat(needed, 100_000, 100) == 0
    assert tables.estimated_bloat(needed * 4, 100_000, 100) == needed * 3
    assert tables.estimated_bloat(needed, 100_000, None) is None  # never analyzed: no estimate
    # a fillfactor of 50 leaves half of each page free on purpose: that is no bloat
    assert tables.estimated_bloat(needed * 2, 100_000, 100, fillfactor=50) < 8192 * 2


def test_dead_tuples_warn_at_a_fifth_and_are_critical_at_half_but_not_in_a_small_table() -> None:
    assert ("warning", "25000 dead tuples, 20% of its rows: VACUUM it") in findings(dead=25_000)
    assert findings(live=100_000, dead=100_000)[0] == ("critical",
                                                       "100000 dead tuples, 50% of its rows: VACUUM it")
    assert findings(live=100, dead=900) == []  # under 1000 dead tuples it waits for autovacuum


def test_never_vacuumed_and_old_vacuums_and_analyzes() -> None:
    assert ("warning", "never vacuumed, 100000 rows") in findings(last_vacuum=None)
    assert findings(live=500, last_vacuum=None) == []
    old = NOW - timedelta(days=9)
    assert ("warning", "last vacuumed 9 days ago with 5000 dead tuples") in findings(last_vacuum=old,
                                                                                     dead=5000)
    assert findings(last_vacuum=old, dead=10) == []  # an old vacuum of a clean table is fine
    assert ("warning", "never analyzed, 100000 rows: the planner guesses") in findings(last_analyze=None)
    assert ("warning", "last analyzed 9 days ago, 20000 rows changed since") in findings(
        last_analyze=old, modified_since_analyze=20_000)


def test_transaction_id_age_levels() -> None:
    assert findings(xid_age=600_000_000)[0][0] == "warning"
    assert findings(xid_age=1_300_000_000)[0][0] == "critical"


def test_duplicates_keep_the_unique_one_and_unused_skips_constraints() -> None:
    def index(name: str, **given: Any) -> dict[str, Any]:
        return {"schema": "public", "table": "orders", "index": name, "scans": 0, "bytes": 2 << 20,
                "is_unique": False, "is_primary": False, "backs_constraint": False, "columns": ["customer"],
                "method": "btree", "predicate": None, **given}

    unused, duplicates = tables.index_rows([
        index("a_plain"), index("b_unique", is_unique=True, backs_constraint=True),
        index("c_partial", predicate="(customer > 0)"), index("d_other", columns=["customer", "id"])])
    assert [[i["index"] for i in g] for g in duplicates] == [["public.b_unique", "public.a_plain"]]
    assert [i["index"] for i in unused] == ["public.a_plain", "public.c_partial", "public.d_other"]
    found = tables.judge_indexes(unused, duplicates, Thresholds(), since=None)
    assert ("warning", "index public.a_plain") in [(f.severity, f.subject) for f in found]
    small = tables.judge_indexes([{**unused[0], "bytes": 8192}], [], Thresholds(), since=None)
    assert small[0].severity == "info"


def session(pid: int, blocked_by: list[int] | None = None, state: str = "active",
            **given: Any) -> dict[str, Any]:
    return {"pid": pid, "user": "shop", "application": "orders", "state": state,
            "blocked_by": blocked_by or [],
            "query_age": 40.0, "transaction_age": 50.0, "state_age": 40.0, "query": f"query {pid}", **given}


def test_the_lock_tree_nests_waiters_under_the_session_that_blocks_them() -> None:
    tree = sessions.lock_tree([session(1, state="idle in transaction"), session(2, [1]), session(3, [2]),
                               session(4, [1]), session(5)])
    assert [(n["pid"], [c["pid"] for c in n["blocks"]]) for n in tree] == [(1, [2, 4])]
    assert tree[0]["blocks"][0]["blocks"][0]["pid"] == 3
    [finding] = sessions.judge_locks(tree, Thresholds())
    assert (finding.severity, finding.subject) == ("warning", "session 1")
    assert finding.what.startswith("blocks 3 sessions, the longest waiting 40 s")


def test_a_lock_cycle_and_a_blocker_elsewhere_do_not_loop() -> None:
    cycle = sessions.lock_tree([session(1, [2]), session(2, [1])])
    assert cycle[0]["pid"] == 1 and cycle[0]["blocks"][0]["pid"] == 2
    assert cycle[0]["blocks"][0]["blocks"] == []
    elsewhere = sessions.lock_tree([session(7, [99])])
    assert elsewhere[0] == {"pid": 99, "query": "(another database)", "blocks": [elsewhere[0]["blocks"][0]]}


def test_idle_in_transaction_over_five_minutes_is_critical() -> None:
    idle = sessions.idle_sessions([session(1, state="idle in transaction", state_age=301.0),
                                   session(2, state="idle in transaction (aborted)", state_age=90.0),
                                   session(3, state="idle", state_age=9999.0)])
    assert [s["pid"] for s in idle] == [1, 2]
    assert [f.severity for f in sessions.judge_idle(idle, Thresholds())] == ["critical", "warning"]


def test_connections_over_eighty_percent() -> None:
    use = sessions.connection_use({"connections": 81, "max_connections": 100})
    assert sessions.judge_connections(use, Thresholds())[0].severity == "warning"
    assert sessions.judge_connections(sessions.connection_use({"connections": 96, "max_connections": 100}),
                                      Thresholds())[0].severity == "critical"
    assert sessions.judge_connections(sessions.connection_use({"connections": 50, "max_connections": 100}),
                                      Thresholds()) == []


def test_statements_not_loaded_is_said_and_slow_ones_are_named() -> None:
    [said] = sessions.judge_statements("not_preloaded", [], Thresholds())
    assert said.severity == "info" and "shared_preload_libraries" in said.what
    rows = [{"id": "1", "query": "select slow", "calls": 3, "mean_ms": 6000.0}]
    assert sessions.judge_statements("loaded", rows, Thresholds())[0].severity == "critical"


def sampled(waiting: int, active: int, size: int = 5, wait: float | None = 0.040) -> pools.Sampled:
    found = pools.Sampled()
    found.add([pools.PoolFigures("shop", "app", size, 20, waiting, active, 0, 0.1, "transaction")])
    found.add([pools.PoolFigures("shop", "app", size, 20, 0, active, 0, 0.0, "transaction")])
    # 1,000 transactions in the window; in the last stats_period 50 a second of 2 ms each
    found.finish({"shop": (0, 0, 0, 0, 0)}, {"shop": (1000, int((wait or 0) * 1e9), 50, 0, 2000)}, 30.0)
    return found


def test_waiting_clients_raise_the_pool_as_far_as_postgresql_has_room() -> None:
    lines, found = pools.advise(sampled(12, 5), pools.Limits(5, 200, max_connections=100,
                                                             server_connections=20))
    assert lines == ["shop/app: clients waited on average 40 ms and 12 waited at peak: raise the pool size "
                     "from 5 to 10; PostgreSQL's max_connections 100 leaves room (77 connections free)"]
    assert [(f.severity, f.detail["advised"]) for f in found] == [("warning", 10)]
    lines, found = pools.advise(sampled(12, 5), pools.Limits(5, 200, max_connections=30,
                                                             server_connections=25))
    assert ("but PostgreSQL has only 2 connections free of max_connections 30: raise max_connections first"
            in lines[0])
    assert found[0].severity == "critical"


def test_a_pgbouncer_no_client_has_used_yet_has_nothing_to_judge() -> None:
    limits = pools.Limits(20, 200, max_connections=100, server_connections=0)
    lines, found = pools.advise(pools.Sampled(looks=3, seconds=2.0), limits)
    assert lines[0].startswith("no pool yet: no client has connected through this PgBouncer")
    assert found == []


def test_an_idle_pool_could_be_smaller_and_a_crowd_near_max_client_conn_is_named() -> None:
    lines, found = pools.advise(sampled(0, 1, size=20), pools.Limits(20, 200, max_connections=100,
                                                                     server_connections=5))
    assert lines == ["shop/app: at most 1 of 20 server connections were active (0.1 busy on average) and no "
                     "client waited: the pool could be 2"]
    assert found[0].severity == "info"
    lines, found = pools.advise(sampled(0, 3), pools.Limits(5, 20, max_connections=100, server_connections=5))
    assert "20 clients at peak against max_client_conn 20: raise max_client_conn to 40" in lines


def test_the_average_wait_comes_from_the_totals_or_else_the_last_period() -> None:
    assert pools.average_waits({"shop": (110, 2_000_000, 0, 0, 0)},
                               {"shop": (100, 1_000_000, 0, 0, 0)}) == {"shop": 0.1}
    # the totals did not move (refreshed once per stats_period): the period's own figures
    assert pools.average_waits({"shop": (100, 1_000_000, 20, 4_000_000, 0)},
                               {"shop": (100, 1_000_000, 20, 4_000_000, 0)}) == {"shop": 0.2}
    assert pools.average_waits({"shop": (100, 1_000_000, 0, 0, 0)}) == {"shop": None}


def test_the_events_read_as_sentences() -> None:
    from opsplane.events.summary import summarise

    vacuum = {"table": "orders", "analyze": True, "statement": 'VACUUM (ANALYZE) "public"."orders"',
              "seconds": 0.073}
    assert summarise("db.vacuum", vacuum, target="database:main", outcome="ok") == \
        'VACUUM (ANALYZE) "public"."orders" on main done in 0.073 s'
    failed = {"table": None, "analyze": False, "error": "cannot reach it"}
    assert summarise("db.analyze", failed, target="database:main", outcome="failed") == \
        "ANALYZE every table on main failed: cannot reach it"
    ended = {"older_than_s": 600.0, "terminated": [41], "sessions": [{}, {}]}
    assert summarise("db.sessions_terminated", ended, target="database:main", outcome="partial") == \
        "Ended 1 of 2 sessions idle in a transaction over 600 s on main (pids 41)"
