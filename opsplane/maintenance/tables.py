"""Tables and indexes judged: vacuum and analyze age, dead tuples, estimated bloat, transaction
id age, unused and duplicate indexes. Pure functions over the rows `drivers.pgstats` reads.

The bloat estimate works from the statistics ANALYZE keeps: the average width of a row is the
sum of its columns' `avg_width` in `pg_stats`, plus the tuple header (23 bytes, aligned to 24)
and its line pointer (4 bytes); a page holds (8192 - 24) x fillfactor of them. The pages the
live rows need, against the table's size on disk, give the bloat. It is an estimate: it counts
no per-row alignment padding or null bitmaps, and it is only as fresh as the last ANALYZE (a
table never analyzed gets none).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from opsplane.maintenance.thresholds import Thresholds, judged
from opsplane.reports.models import Finding, Severity

PAGE = 8192
PAGE_HEADER = 24
TUPLE_HEADER = 24
LINE_POINTER = 4


def estimated_bloat(size: int, live: int, row_width: int | None, fillfactor: int = 100) -> int | None:
    """Bytes of the table beyond what its live rows need; None without column statistics."""
    if row_width is None or size <= 0:
        return None
    tuple_bytes = TUPLE_HEADER + 8 * math.ceil(row_width / 8) + LINE_POINTER
    per_page = max(1, math.floor((PAGE - PAGE_HEADER) * fillfactor / 100 / tuple_bytes))
    needed = math.ceil(max(live, 0) / per_page) * PAGE
    return max(0, size - needed)


def _age(now: datetime, *times: datetime | None) -> float | None:
    known = [t for t in times if t is not None]
    return (now - max(known)).total_seconds() if known else None


def table_rows(tables: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Each table with the figures the report shows: ages in seconds (None: never), the dead
    share and the estimated bloat."""
    found = []
    for t in tables:
        live, dead, size = int(t["live"] or 0), int(t["dead"] or 0), int(t["bytes"] or 0)
        bloat = estimated_bloat(size, live, t.get("row_width"), int(t.get("fillfactor") or 100))
        found.append(
            {
                "table": f"{t['schema']}.{t['table']}",
                "live": live,
                "dead": dead,
                "dead_ratio": round(dead / (live + dead), 4) if live + dead else 0.0,
                "vacuum_age_s": _age(now, t.get("last_vacuum"), t.get("last_autovacuum")),
                "analyze_age_s": _age(now, t.get("last_analyze"), t.get("last_autoanalyze")),
                "modified_since_analyze": int(t.get("modified_since_analyze") or 0),
                "xid_age": int(t["xid_age"] or 0),
                "bytes": size,
                "bloat_bytes": bloat,
                "bloat_ratio": round(bloat / size, 4) if bloat is not None and size else None,
                "autovacuum": bool(t.get("autovacuum", True)),
            }
        )
    return found



def judge_tables(rows: Iterable[Mapping[str, Any]], limits: Thresholds) -> list[Finding]:
    """Findings about the tables of `table_rows`."""
    findings = []
    for t in rows:
        subject = f"table {t['table']}"
        live, dead = t["live"], t["dead"]
        off = "" if t["autovacuum"] else " (autovacuum is off for it)"
        if dead >= limits.min_dead_tuples:
            level = judged(t["dead_ratio"], limits.dead_ratio_warning, limits.dead_ratio_critical)
            if level:
                findings.append(
                    Finding(
                        level,
                        subject,
                        f"{dead} dead tuples, {t['dead_ratio']:.0%} of its rows{off}: VACUUM it",
                        {"dead": dead, "dead_ratio": t["dead_ratio"]},
                    )
                )
        if t["vacuum_age_s"] is None:
            if live + dead >= limits.never_vacuumed_rows or dead >= limits.min_dead_tuples:
                findings.append(
                    Finding(
                        "warning", subject, f"never vacuumed, {live + dead} rows{off}", {"rows": live + dead}
                    )
                )
        elif t["vacuum_age_s"] >= limits.vacuum_age_warning and dead >= limits.min_dead_tuples:
            findings.append(
                Finding(
                    "warning",
                    subject,
                    f"last vacuumed {_days(t['vacuum_age_s'])} ago with {dead} dead tuples{off}",
                    {"vacuum_age_s": t["vacuum_age_s"]},
                )
            )
        changed = t["modified_since_analyze"]
        if t["analyze_age_s"] is None:
            if live >= limits.never_analyzed_rows:
                findings.append(
                    Finding(
                        "warning",
                        subject,
                        f"never analyzed, {live} rows: the planner guesses",
                        {"rows": live},
                    )
                )
        elif (
            t["analyze_age_s"] >= limits.analyze_age_warning
            and changed >= max(1, live) * limits.modified_share_warning
        ):
            findings.append(
                Finding(
                    "warning",
                    subject,
                    f"last analyzed {_days(t['analyze_age_s'])} ago, {changed} rows changed since",
                    {"analyze_age_s": t["analyze_age_s"]},
                )
            )
        bloat = t["bloat_bytes"]
        if bloat is not None and bloat >= limits.min_bloat_bytes and t["bloat_ratio"] is not None:
            level = judged(t["bloat_ratio"], limits.bloat_ratio_warning, limits.bloat_ratio_critical)
            if level:
                findings.append(
                    Finding(
                        level,
                        subject,
                        f"about {_size(bloat)} of {_size(t['bytes'])} "
                        f"({t['bloat_ratio']:.0%}) is bloat (estimate)",
                        {"bloat_bytes": bloat, "bloat_ratio": t["bloat_ratio"]},
                    )
                )
        level = judged(t["xid_age"], limits.xid_age_warning, limits.xid_age_critical)
        if level:
            findings.append(
                Finding(
                    level,
                    subject,
                    f"transaction id age {t['xid_age']:,} (wraparound at {2**31:,}): VACUUM (FREEZE) it",
                    {"xid_age": t["xid_age"]},
                )
            )
    return findings


def index_rows(
    indexes: Iterable[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """The unused indexes (never scanned since the statistics were reset, neither unique nor
    backing a constraint) and the groups of duplicates (same table, method, columns and
    predicate), each group with the one to keep first."""
    unused = []
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for i in indexes:
        row = {
            "index": f"{i['schema']}.{i['index']}",
            "table": f"{i['schema']}.{i['table']}",
            "scans": int(i["scans"] or 0),
            "bytes": int(i["bytes"] or 0),
            "columns": list(i["columns"] or []),
            "unique": bool(i["is_unique"]),
            "primary": bool(i["is_primary"]),
            "constraint": bool(i["backs_constraint"]),
        }
        if row["scans"] == 0 and not (row["unique"] or row["primary"] or row["constraint"]):
            unused.append(row)
        key = (row["table"], i.get("method"), tuple(i["columns"] or []), i.get("predicate"))
        groups[key].append(row)
    duplicates = []
    for group in groups.values():
        if len(group) > 1:
            group.sort(
                key=lambda r: (
                    not r["primary"],
                    not r["constraint"],
                    not r["unique"],
                    -r["scans"],
                    r["index"],
                )
            )
            duplicates.append(group)
    return unused, sorted(duplicates, key=lambda g: g[0]["index"])


def judge_indexes(
    unused: list[dict[str, Any]],
    duplicates: list[list[dict[str, Any]]],
    limits: Thresholds,
    since: datetime | None,
) -> list[Finding]:
    found = []
    reset = f"since {since:%Y-%m-%d}" if since is not None else "since the statistics began"
    for row in unused:
        level: Severity = "warning" if row["bytes"] >= limits.unused_index_bytes else "info"
        found.append(
            Finding(
                level,
                f"index {row['index']}",
                f"never scanned {reset}, {_size(row['bytes'])} "
                f"on {row['table']} ({', '.join(row['columns'])}): drop it if no query needs it",
                {"bytes": row["bytes"]},
            )
        )
    for group in duplicates:
        keep, *rest = group
        for row in rest:
            found.append(
                Finding(
                    "warning",
                    f"index {row['index']}",
                    f"duplicates {keep['index']} on "
                    f"{row['table']} ({', '.join(row['columns'])}): drop it, {_size(row['bytes'])}",
                    {"duplicate_of": keep["index"], "bytes": row["bytes"]},
                )
            )
    return found


def _days(seconds: float) -> str:
    return f"{seconds / 86400:.0f} days" if seconds >= 2 * 86400 else f"{seconds / 3600:.0f} h"


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
