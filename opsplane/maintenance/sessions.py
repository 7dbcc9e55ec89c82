"""Sessions judged: who blocks whom as a tree (from `pg_blocking_pids`), sessions idle in a
transaction, connections against max_connections, the slowest statements. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opsplane.maintenance.thresholds import Thresholds, judged
from opsplane.reports.models import Finding

IDLE_STATES = ("idle in transaction", "idle in transaction (aborted)")


def _brief(s: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pid": int(s["pid"]),
        "user": s.get("user"),
        "application": s.get("application") or "",
        "state": s.get("state"),
        "waiting_s": _round(s.get("query_age")) if s.get("blocked_by") else None,
        "transaction_age_s": _round(s.get("transaction_age")),
        "query": s.get("query") or "",
    }


def _round(value: Any) -> float | None:
    return round(float(value), 3) if value is not None else None


def lock_tree(sessions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The blocking sessions that wait for nobody, each with the sessions it blocks nested
    under `blocks` (a session blocked by several appears under each). A blocker outside the
    report's database appears by its pid alone."""
    by_pid = {int(s["pid"]): s for s in sessions}
    blocks: dict[int, list[int]] = {}
    for pid, s in by_pid.items():
        for blocker in s.get("blocked_by") or []:
            blocks.setdefault(int(blocker), []).append(pid)
    roots = [pid for pid in blocks if not (by_pid.get(pid, {}).get("blocked_by"))]
    if not roots and blocks:  # everyone waits for someone: a cycle (a deadlock in the making)
        roots = [min(blocks)]

    def node(pid: int, path: frozenset[int]) -> dict[str, Any]:
        found = _brief(by_pid[pid]) if pid in by_pid else {"pid": pid, "query": "(another database)"}
        found["blocks"] = [
            node(child, path | {child}) for child in sorted(blocks.get(pid, [])) if child not in path
        ]
        return found

    return [node(pid, frozenset({pid})) for pid in sorted(roots)]


def _waiters(tree: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for root in tree:
        stack = list(root["blocks"])
        while stack:
            item = stack.pop()
            found.append(item)
            stack.extend(item["blocks"])
    return found


def judge_locks(tree: list[dict[str, Any]], limits: Thresholds) -> list[Finding]:
    """One finding per blocking session whose longest waiter waited past the levels."""
    found = []
    for root in tree:
        waiters = _waiters([root])
        longest = max((w.get("waiting_s") or 0.0 for w in waiters), default=0.0)
        level = judged(longest, limits.lock_wait_warning, limits.lock_wait_critical)
        if level:
            found.append(
                Finding(
                    level,
                    f"session {root['pid']}",
                    f"blocks {len(waiters)} sessions, the longest "
                    f"waiting {_seconds(longest)}: {root.get('query', '')[:120]}",
                    {"pid": root["pid"], "blocked": [w["pid"] for w in waiters], "longest_wait_s": longest},
                )
            )
    return found


def idle_sessions(sessions: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The sessions idle in a transaction, longest idle first."""
    found = [
        {**_brief(s), "idle_s": _round(s.get("state_age")) or 0.0}
        for s in sessions
        if s.get("state") in IDLE_STATES
    ]
    return sorted(found, key=lambda s: -s["idle_s"])


def judge_idle(idle: list[dict[str, Any]], limits: Thresholds) -> list[Finding]:
    found = []
    for s in idle:
        level = judged(s["idle_s"], limits.idle_in_transaction_warning, limits.idle_in_transaction_critical)
        if level:
            found.append(
                Finding(
                    level,
                    f"session {s['pid']}",
                    f"idle in a transaction for {_seconds(s['idle_s'])} "
                    f"({s['user']}, {s['application'] or 'no application name'}): it holds its locks "
                    f"and keeps VACUUM from removing dead rows; `opsplane db terminate-idle`",
                    {"pid": s["pid"], "idle_s": s["idle_s"]},
                )
            )
    return found


def connection_use(server: Mapping[str, Any]) -> dict[str, Any]:
    used, limit = int(server["connections"]), int(server["max_connections"])
    return {
        "connections": used,
        "max_connections": limit,
        "reserved_connections": int(server.get("reserved_connections") or 0),
        "ratio": round(used / limit, 4) if limit else 0.0,
    }


def judge_connections(use: Mapping[str, Any], limits: Thresholds) -> list[Finding]:
    level = judged(use["ratio"], limits.connections_warning, limits.connections_critical)
    if not level:
        return []
    return [
        Finding(
            level,
            "connections",
            f"{use['connections']} of max_connections {use['max_connections']} "
            f"({use['ratio']:.0%}) in use: put PgBouncer in front, or raise max_connections",
            dict(use),
        )
    ]


def statement_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": r["id"],
            "query": r["query"],
            "calls": int(r["calls"]),
            "total_ms": round(float(r["total_ms"]), 3),
            "mean_ms": round(float(r["mean_ms"]), 3),
            "rows": int(r["rows"]),
        }
        for r in rows
    ]


STATEMENTS_MISSING = {
    "not_preloaded": "pg_stat_statements is not loaded: add it to shared_preload_libraries (a restart), then "
    "CREATE EXTENSION pg_stat_statements; no slow queries can be shown",
    "not_created": "pg_stat_statements is loaded but not created in this database: CREATE EXTENSION "
    "pg_stat_statements; no slow queries can be shown",
}


def judge_statements(state: str, by_mean: list[dict[str, Any]], limits: Thresholds) -> list[Finding]:
    if state in STATEMENTS_MISSING:
        return [Finding("info", "pg_stat_statements", STATEMENTS_MISSING[state])]
    found = []
    for r in by_mean:
        level = judged(r["mean_ms"], limits.slow_mean_warning_ms, limits.slow_mean_critical_ms)
        if level and r["calls"] >= limits.min_calls:
            found.append(
                Finding(
                    level,
                    f"statement {r['id']}",
                    f"{r['mean_ms']:.0f} ms on average over {r['calls']} calls: {r['query'][:120]}",
                    {"mean_ms": r["mean_ms"]},
                )
            )
    return found



def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"
