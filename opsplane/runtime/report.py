"""`ps`, `stats` and `logs --errors` as tables for people and data for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from opsplane.drivers.runtime.base import InstanceStatus
from opsplane.runtime.logscan import ServiceErrors
from opsplane.timefmt import span

STATE_STYLE = {"running": "green", "starting": "yellow", "backoff": "bold red", "failed": "bold red",
               "stopped": "dim"}


def format_uptime(seconds: float | None) -> str:
    """"45s", "12m 05s", "3h 20m", "2d 4h"; "-" when not running."""
    return "-" if seconds is None else span(seconds)


def format_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def ps_table(statuses: Sequence[InstanceStatus], now: datetime) -> Table:
    """One row per instance; SERVICE is its group (`catalog`, or a track such as `catalog@v2`),
    VERSION the release it runs."""
    table = Table("SERVICE", "#", "VERSION", "PID", "PORT", "STATE", "UPTIME", "RESTARTS", "LAST EXIT")
    for s in statuses:
        table.add_row(s.service, str(s.instance), s.version or "-", _or_dash(s.pid), _or_dash(s.port),
                      Text(s.state, style=STATE_STYLE.get(s.state, "")),
                      format_uptime(s.uptime_at(now)), str(s.restarts), s.last_exit or "-")
    return table


def ps_data(statuses: Sequence[InstanceStatus], now: datetime) -> list[dict[str, Any]]:
    rows = []
    for s in statuses:
        row = s.as_dict()
        row["uptime"] = s.uptime_at(now)
        rows.append(row)
    return rows


def stats_table(statuses: Sequence[InstanceStatus]) -> Table:
    table = Table("SERVICE", "#", "PID", "STATE", "CPU %", "MEM (RSS)")
    for s in statuses:
        cpu = "-" if s.cpu_percent is None else f"{s.cpu_percent:.1f}%"
        table.add_row(s.service, str(s.instance), _or_dash(s.pid),
                      Text(s.state, style=STATE_STYLE.get(s.state, "")), cpu, format_bytes(s.rss_bytes))
    measured = [s for s in statuses if s.rss_bytes is not None]
    if len(measured) > 1:
        cpu_total = sum(s.cpu_percent or 0.0 for s in measured)
        table.add_row("total", "", "", "", f"{cpu_total:.1f}%",
                      format_bytes(sum(s.rss_bytes or 0 for s in measured)), style="bold")
    return table


def stats_data(statuses: Sequence[InstanceStatus]) -> list[dict[str, Any]]:
    return [{"service": s.service, "instance": s.instance, "pid": s.pid, "state": s.state,
             "cpu_percent": s.cpu_percent, "rss_bytes": s.rss_bytes} for s in statuses]


def errors_table(results: Sequence[ServiceErrors], *, top: int) -> list[Table | Text]:
    """A count per service, then each service's most frequent messages."""
    kinds = ("traceback", "http_5xx", "level", "exception")
    summary = Table("SERVICE", "ERRORS", *(kind.upper() for kind in kinds))
    ordered = sorted(results, key=lambda r: (-r.errors, r.service))
    for r in ordered:
        summary.add_row(r.service, Text(str(r.errors), style="bold red" if r.errors else "green"),
                        *(str(r.kinds.get(kind, 0)) for kind in kinds))
    parts: list[Table | Text] = [summary]
    for r in ordered:
        if not r.errors:
            continue
        messages = Table("COUNT", "LAST SEEN", "MESSAGE", title=f"{r.service}: top messages",
                         title_justify="left")
        for m in r.top(top):
            messages.add_row(str(m.count), m.last_seen.strftime("%Y-%m-%d %H:%M:%S"), Text(m.message))
        parts.append(messages)
    return parts


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)
