"""A game day's report: the JSON document kept with it, and the same as Markdown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opsplane.gameday.measures import Measures
from opsplane.timefmt import span

_LABELS = {"detect": "Time to detect", "page": "Time to page", "recover": "Time to recovery (runbook)",
           "resolve": "Time to resolve"}


def build(*, gameday_id: int, scenario: str, definition: dict[str, Any], measures: Measures, verdict: str,
          injected_at: datetime, ended_at: datetime | None, finished_at: datetime, undone: str,
          error: str = "") -> dict[str, Any]:
    """The report document: the scenario, when the fault was in force, each measure and the verdict."""
    return {
        "gameday": gameday_id, "scenario": scenario, "kind": definition.get("kind"),
        "target": definition.get("target"), "verdict": verdict, "severity": measures.severity,
        "injected_at": injected_at.isoformat(), "ended_at": ended_at.isoformat() if ended_at else None,
        "finished_at": finished_at.isoformat(),
        "fault_seconds": round((ended_at - injected_at).total_seconds(), 3) if ended_at else None,
        "undone": undone, "error": error, "incidents": list(measures.incidents),
        "measures": [m.as_dict() for m in measures.measures],
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else span(value)


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown, for a post-mortem or the quarter's review."""
    lines = [
        f"# Game day {report['gameday']}: {report['scenario']}",
        "",
        f"**Verdict: {report['verdict']}**",
        "",
        f"- Fault: {report['kind']} on {report['target']}",
        f"- Injected: {report['injected_at']}",
        f"- Undone: {report['ended_at'] or 'never'} ({report['undone'] or 'nothing to undo'})",
        f"- Fault in force: {_seconds(report['fault_seconds'])}",
        f"- Severity judged against: {report['severity']}",
        f"- Incidents: {', '.join(f'INC-{i}' for i in report['incidents']) or 'none opened'}",
    ]
    if report.get("error"):
        lines.append(f"- Problem: {report['error']}")
    lines += ["", "| measure | took | target | verdict | evidence |", "|---|---|---|---|---|"]
    for m in report["measures"]:
        label = _LABELS.get(m["name"], m["name"]) + ("" if m["expected"] else " (not expected)")
        lines.append(f"| {label} | {_seconds(m['seconds'])} | {_seconds(m['target'])} | {m['verdict']} | "
                     f"{m['evidence'] or '-'} |")
    return "\n".join(lines) + "\n"
