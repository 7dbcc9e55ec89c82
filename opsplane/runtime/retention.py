"""Log retention: rotated log files older than their service's retention, found and deleted.

The runtime's log writers rotate each instance's log by size and by day (`run.logs`); the
rotated copies `SERVICE.N.log.K` stay until a later rotation pushes them past `backups`. The
daily `log-retention` job deletes those whose last line (modification time) is older than the
service's `retention` (30 days for services, 90 days for proxies unless set), and reports how
many files and bytes it removed per service. The file an instance writes (`SERVICE.N.log`) is
never deleted. Which files are expired is a pure function of the files and the time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsplane.config.models import PROXY_LOG_RETENTION, SERVICE_LOG_RETENTION, Inventory
from opsplane.reports.models import Finding, Report
from opsplane.units import format_value

if TYPE_CHECKING:
    from opsplane.reports.jobs import JobEnv

# SERVICE.N.log.K, SERVICE possibly a track's SERVICE@VERSION
_ROTATED = re.compile(r"^(?P<group>.+)\.(?P<instance>\d+)\.log\.(?P<age>\d+)$")


@dataclass(frozen=True)
class LogFile:
    """A rotated log file: whose, its size and when it was last written."""

    path: Path
    service: str
    size: int
    modified: datetime


def retentions(inventory: Inventory) -> dict[str, float]:
    """Seconds each runnable component's rotated logs are kept, by name."""
    from opsplane.runtime.selection import runnable

    found: dict[str, float] = {}
    for name, component in runnable(inventory).items():
        if name in inventory.proxies:
            logs = inventory.proxies[name].logs
            found[name] = logs.retention if logs.retention is not None else PROXY_LOG_RETENTION
        elif component.run is not None:
            kept = component.run.logs.retention
            found[name] = kept if kept is not None else SERVICE_LOG_RETENTION
    return found


def expired(files: Iterable[LogFile], retention_of: Callable[[str], float], now: datetime) -> list[LogFile]:
    """The files last written longer ago than their service's retention, oldest first."""
    gone = [f for f in files if (now - f.modified).total_seconds() > retention_of(f.service)]
    return sorted(gone, key=lambda f: (f.modified, f.path.name))


def rotated_files(log_dir: Path) -> list[LogFile]:
    """The rotated log files in `log_dir` (never the ones being written)."""
    found = []
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    for name in names:
        match = _ROTATED.match(name)
        if match is None:
            continue
        try:
            stat = (log_dir / name).stat()
        except FileNotFoundError:  # rotated away meanwhile
            continue
        service = match["group"].partition("@")[0]
        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        found.append(LogFile(log_dir / name, service, stat.st_size, modified))
    return found


@dataclass(frozen=True)
class Removed:
    """What one pass removed, per service: files and bytes; and what could not be removed."""

    files: dict[str, int]
    bytes: dict[str, int]
    kept: dict[str, int]
    problems: tuple[str, ...] = ()


def apply(log_dir: Path, inventory: Inventory, now: datetime) -> Removed:
    """Delete the expired rotated files of `log_dir`. A file of a service no longer in the
    inventory keeps the services' default retention."""
    kept = retentions(inventory)
    files = rotated_files(log_dir)
    removed_files: dict[str, int] = {}
    removed_bytes: dict[str, int] = {}
    problems: list[str] = []
    for file in expired(files, lambda service: kept.get(service, SERVICE_LOG_RETENTION), now):
        try:
            file.path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(f"{file.path.name}: {exc.strerror or exc}")
            continue
        removed_files[file.service] = removed_files.get(file.service, 0) + 1
        removed_bytes[file.service] = removed_bytes.get(file.service, 0) + file.size
    left: dict[str, int] = {}
    for file in rotated_files(log_dir):
        left[file.service] = left.get(file.service, 0) + 1
    return Removed(removed_files, removed_bytes, left, tuple(problems))


def log_dir(inventory: Inventory, base_dir: Path) -> Path:
    """Where the runtime's log writers write (`<runtime.state_dir>/logs`)."""
    from opsplane.drivers.runtime.protocol import StatePaths

    return StatePaths(base_dir / inventory.runtime.state_dir).logs


def report(removed: Removed, retention: dict[str, float], where: Path) -> Report:
    """The `log-retention` report: what was removed per service; a file that could not be
    deleted is a warning."""
    files, size = sum(removed.files.values()), sum(removed.bytes.values())
    findings = [Finding("info", service, f"{count} rotated file{'s' if count != 1 else ''} older than "
                        f"{_days(retention.get(service, SERVICE_LOG_RETENTION))} removed "
                        f"({format_value(removed.bytes[service], 'bytes')})",
                        {"files": count, "bytes": removed.bytes[service]})
                for service, count in sorted(removed.files.items())]
    findings += [Finding("warning", "logs", f"could not delete {problem}") for problem in removed.problems]
    summary = (f"removed {files} rotated log file{'s' if files != 1 else ''} ({format_value(size, 'bytes')})"
               if files else "no rotated log file was past its retention")
    body: dict[str, Any] = {
        "log_dir": str(where), "files": files, "bytes": size,
        "services": {s: {"retention_seconds": retention.get(s, SERVICE_LOG_RETENTION),
                         "removed_files": removed.files.get(s, 0), "removed_bytes": removed.bytes.get(s, 0),
                         "rotated_files_left": removed.kept.get(s, 0)}
                     for s in sorted(set(retention) | set(removed.files) | set(removed.kept))},
        "problems": list(removed.problems)}
    lines = ["# Log retention", "", summary, "",
             "| service | retention | removed files | removed bytes | left |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {_days(v['retention_seconds'])} | {v['removed_files']} | "
              f"{format_value(v['removed_bytes'], 'bytes')} | {v['rotated_files_left']} |"
              for s, v in body["services"].items()]
    return Report(job="log-retention", subject=str(where), summary=summary, findings=tuple(findings),
                  body=body, markdown="\n".join(lines) + "\n")


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:g} days" if days >= 1 else format_value(seconds, "seconds")


def retention_job(env: JobEnv) -> Report | None:
    """The daily `log-retention` job; None when opsplane's runtime runs nothing."""
    if not env.inventory.runs_services:
        return None
    where = log_dir(env.inventory, env.base_dir)
    removed = apply(where, env.inventory, env.clock.now())
    return report(removed, retentions(env.inventory), where)
