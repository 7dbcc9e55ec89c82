"""Health as data for `--json` and the API, and as a table for people."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from opsplane.health.models import State
from opsplane.health.status import ComponentStatus, overall
from opsplane.health.targets import CheckTarget

STATE_STYLE = {State.OK: "green", State.WARNING: "yellow", State.UNKNOWN: "magenta",
               State.CRITICAL: "bold red"}


def as_data(
    statuses: list[ComponentStatus],
    targets: list[CheckTarget],
    *,
    platform: str,
    environment: str,
    checked_at: datetime,
) -> dict[str, Any]:
    """The health report as plain JSON-ready data; `state` and `exit_code` are the overall ones."""
    by_id = {t.id: t for t in targets}
    state = overall(statuses)
    counts = Counter(s.state.value for s in statuses if s.checked)
    return {
        "platform": platform,
        "environment": environment,
        "checked_at": checked_at.isoformat(),
        "state": state.value,
        "exit_code": state.exit_code,
        "summary": {s.value: counts.get(s.value, 0) for s in State},
        "services": [
            {
                "name": s.name,
                "section": s.section,
                "kind": s.kind,
                "criticality": s.criticality,
                "team": s.team,
                "state": s.state.value,
                "reason": s.reason,
                "impacted": s.impacted,
                "root_causes": [
                    {"component": c.component, "path": list(c.path), "reason": c.reason}
                    for c in s.root_causes
                ],
                "checks": [
                    {
                        "name": c.name,
                        "type": c.type,
                        "target": by_id[f"{s.name}/{c.name}"].address
                        if f"{s.name}/{c.name}" in by_id else None,
                        "state": c.result.state.value if c.result else None,
                        "reason": c.result.reason if c.result else None,
                        "duration_ms": round(c.result.duration * 1000, 2) if c.result else None,
                        "metrics": dict(c.result.metrics) if c.result else {},
                    }
                    for c in s.checks
                    if c.result is not None
                ],
            }
            for s in statuses
            if s.checked
        ],
    }


def as_table(statuses: list[ComponentStatus], *, detailed: bool = False, title: str = "") -> Table:
    table = Table(title=title or None, title_justify="left", expand=False)
    table.add_column("SERVICE", no_wrap=True)
    table.add_column("KIND")
    table.add_column("CRIT")
    table.add_column("STATE", no_wrap=True)
    table.add_column("TIME", justify="right")
    table.add_column("DETAILS", overflow="fold")
    for s in statuses:
        if not s.checked:
            continue
        state = Text(s.state.value, style=STATE_STYLE[s.state])
        if s.impacted:
            state.append(" ⇣", style="red")
        slowest = max((c.result.duration for c in s.checks if c.result), default=0.0)
        details = s.reason
        if s.impacted and s.state is State.OK:
            details += "; impacted: " + "; ".join(c.explain() for c in s.root_causes)
        table.add_row(s.name, s.kind, s.criticality, state, f"{slowest * 1000:.0f} ms", details)
        if detailed:
            for c in s.checks:
                if c.result is None:
                    continue
                figures = ", ".join(f"{k}={_fmt(v)}" for k, v in c.result.metrics.items())
                table.add_row(
                    Text(f"  └ {c.name}", style="dim"), Text(c.type, style="dim"), "",
                    Text(c.result.state.value, style=STATE_STYLE[c.result.state]),
                    f"{c.result.duration * 1000:.0f} ms",
                    Text(f"{c.result.reason}" + (f"\n{figures}" if figures else ""), style="dim"),
                )
    return table


def _fmt(value: object) -> str:
    """A figure as a person reads it: no Python spellings such as None or False."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
