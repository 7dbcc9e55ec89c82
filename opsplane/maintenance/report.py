"""The db report: what `drivers.pgstats.collect` read, judged into findings with a body (JSON)
and Markdown. Pure: the ages are worked out against the server's own clock, read with the rest.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from opsplane.maintenance import sessions as judge_sessions
from opsplane.maintenance import tables as judge_tables
from opsplane.maintenance.thresholds import Thresholds, judged
from opsplane.reports.models import Finding, Report

JOB = "db-report"


def database_body(name: str, address: str, collected: dict[str, Any], limits: Thresholds) -> dict[str, Any]:
    """The report's body for one database: its figures, as `--json` prints them."""
    server = collected["server"]
    now: datetime = server["now"]
    unused, duplicates = judge_tables.index_rows(collected["indexes"])
    state = collected["statements_state"]
    tables = judge_tables.table_rows(collected["tables"], now)
    return {
        "database": name,
        "address": address,
        "collected_at": now.isoformat(),
        "server": {
            "version": str(server["version"]).split()[0],
            "database_xid_age": int(server["database_xid_age"] or 0),
            "freeze_max_age": int(server["freeze_max_age"]),
            "stats_reset": server["stats_reset"].isoformat() if server.get("stats_reset") else None,
            **judge_sessions.connection_use(server),
        },
        "tables": sorted(tables, key=lambda t: (-t["dead"], t["table"])),
        "indexes": {"unused": unused, "duplicates": duplicates},
        "statements": {
            "state": state,
            "note": judge_sessions.STATEMENTS_MISSING.get(state),
            "by_total": judge_sessions.statement_rows(collected.get("statements_by_total", [])),
            "by_mean": judge_sessions.statement_rows(collected.get("statements_by_mean", [])),
        },
        "locks": judge_sessions.lock_tree(collected["sessions"]),
        "idle_in_transaction": judge_sessions.idle_sessions(collected["sessions"]),
    }


def database_findings(body: dict[str, Any], limits: Thresholds) -> list[Finding]:
    stats_reset = body["server"]["stats_reset"]
    since = datetime.fromisoformat(stats_reset) if stats_reset else None
    server = body["server"]
    found = judge_tables.judge_tables(body["tables"], limits)
    level = judged(server["database_xid_age"], limits.xid_age_warning, limits.xid_age_critical)
    if level:
        found.append(
            Finding(
                level,
                "database",
                f"transaction id age {server['database_xid_age']:,}: "
                f"wraparound at {2**31:,}; VACUUM (FREEZE) its oldest tables",
            )
        )
    found += judge_tables.judge_indexes(
        body["indexes"]["unused"], body["indexes"]["duplicates"], limits, since
    )
    found += judge_sessions.judge_statements(
        body["statements"]["state"], body["statements"]["by_mean"], limits
    )
    found += judge_sessions.judge_locks(body["locks"], limits)
    found += judge_sessions.judge_idle(body["idle_in_transaction"], limits)
    found += judge_sessions.judge_connections(server, limits)
    return found


def one_report(
    name: str, address: str, collected: dict[str, Any], limits: Thresholds = Thresholds()
) -> Report:
    """The report of one database."""
    body = database_body(name, address, collected, limits)
    findings = database_findings(body, limits)
    return Report(
        job=JOB,
        subject=name,
        summary=summary(name, findings),
        findings=tuple(findings),
        body=body,
        markdown=markdown(body, findings),
    )


def combined(reports: list[Report], failures: dict[str, str]) -> Report:
    """One report of every database: findings named by their database, a database that could
    not be read a critical finding of its own (the report still stands for the others)."""
    findings: list[Finding] = []
    for report in reports:
        findings += [replace(f, subject=f"{report.subject}: {f.subject}") for f in report.findings]
    for name, reason in failures.items():
        findings.append(Finding("critical", name, f"could not be read: {reason}"))
    names = [r.subject for r in reports] + list(failures)
    body = {"databases": {r.subject: r.body for r in reports}, "failures": failures}
    text = "\n\n".join(r.markdown for r in reports)
    if failures:
        text += "\n\n## Not read\n\n" + "\n".join(f"- {n}: {why}" for n, why in failures.items())
    return Report(
        job=JOB,
        subject=", ".join(names) or "-",
        summary=summary(", ".join(names), findings),
        findings=tuple(findings),
        body=body,
        markdown=text.strip() + "\n",
        failed=bool(failures) and not reports,
    )


def summary(name: str, findings: list[Finding]) -> str:
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("critical", "warning")}
    if not any(counts.values()):
        return f"{name}: nothing to fix"
    said = [f"{n} {s}" for s, n in counts.items() if n]
    return f"{name}: {', '.join(said)}"


def markdown(body: dict[str, Any], findings: list[Finding]) -> str:
    """The report of one database for a person."""
    server = body["server"]
    lines = [
        f"# Database {body['database']}",
        "",
        f"{body['address']}, PostgreSQL {server['version']}, at {body['collected_at'][:19]}; "
        f"{server['connections']} of max_connections {server['max_connections']} in use "
        f"({server['ratio']:.0%}); transaction id age {server['database_xid_age']:,}.",
        "",
    ]
    lines += ["## Findings", ""]
    lines += [f"- **{f.severity}** {f.subject}: {f.what}" for f in findings if f.severity != "info"] or [
        "- none"
    ]
    infos = [f for f in findings if f.severity == "info"]
    lines += [f"- {f.subject}: {f.what}" for f in infos]
    lines += [
        "",
        "## Tables",
        "",
        "| table | live | dead | dead % | last vacuum | last analyze | xid age | size | bloat (est.) |",
        "|---|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for t in body["tables"]:
        bloat = (
            "-"
            if t["bloat_bytes"] is None
            else f"{judge_tables._size(t['bloat_bytes'])} ({t['bloat_ratio']:.0%})"
        )
        lines.append(
            f"| {t['table']} | {t['live']} | {t['dead']} | {t['dead_ratio']:.0%} | "
            f"{_ago(t['vacuum_age_s'])} | "
            f"{_ago(t['analyze_age_s'])} | {t['xid_age']:,} | {judge_tables._size(t['bytes'])} | {bloat} |"
        )
    indexes = body["indexes"]
    lines += ["", "## Indexes", ""]
    lines += [
        f"- unused: {i['index']} on {i['table']} ({', '.join(i['columns'])}), "
        f"{judge_tables._size(i['bytes'])}"
        for i in indexes["unused"]
    ]
    lines += [
        f"- duplicates: {', '.join(i['index'] for i in group)} on {group[0]['table']} "
        f"({', '.join(group[0]['columns'])})"
        for group in indexes["duplicates"]
    ]
    if not indexes["unused"] and not indexes["duplicates"]:
        lines.append("- none unused or duplicated")
    statements = body["statements"]
    lines += ["", "## Slow queries (pg_stat_statements)", ""]
    if statements["note"]:
        lines.append(statements["note"])
    else:
        for title, key in (("By total time", "by_total"), ("By mean time", "by_mean")):
            lines += [f"{title}:", "", "| calls | total ms | mean ms | query |", "|---:|---:|---:|---|"]
            lines += [
                f"| {r['calls']} | {r['total_ms']:.1f} | {r['mean_ms']:.2f} | `{_cell(r['query'])}` |"
                for r in statements[key]
            ]
            lines.append("")
    lines += ["", "## Blocking locks", ""]
    lines += _tree(body["locks"], 0) or ["- none"]
    lines += ["", "## Idle in transaction", ""]
    lines += [
        f"- pid {s['pid']} ({s['user']}, {s['application'] or '-'}): idle {s['idle_s']:.0f} s, "
        f"`{_cell(s['query'])}`"
        for s in body["idle_in_transaction"]
    ] or ["- none"]
    return "\n".join(lines).rstrip() + "\n"


def _tree(nodes: list[dict[str, Any]], depth: int) -> list[str]:
    lines = []
    for n in nodes:
        waited = f", waiting {n['waiting_s']:.0f} s" if n.get("waiting_s") is not None else ""
        lines.append(
            f"{'  ' * depth}- pid {n['pid']} ({n.get('state') or '-'}{waited}): `{_cell(n.get('query', ''))}`"
        )
        lines += _tree(n["blocks"], depth + 1)
    return lines


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")[:120]
