"""The sentences of the backup domain's events: backups, repository checks, copies gone,
verifications, retention, requests, the WAL archive, and restores, drills and failovers."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from opsplane.events.words import text
from opsplane.units import format_value


def _said(d: Mapping[str, Any], key: str, default: str = "?") -> str:
    return text(d.get(key)) or default


def _backup(kind: str, target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    what = f"Backup {_said(d, 'backup')} of {_said(d, 'policy')}"
    if kind == "backup.started":
        return f"{what} started: {_said(d, 'kind')}, {_said(d, 'trigger')}"
    if kind == "backup.completed":
        size = d.get("size_bytes")
        size_said = format_value(size, "bytes") if isinstance(size, int | float) and not isinstance(
            size, bool) else "?"
        copies = _said(d, "copies", "no repository")
        return (f"{what} complete: {_said(d, 'kind')}, {size_said} in {_said(d, 'seconds')} s; "
                f"copies in {copies}")
    if kind == "backup.failed":
        return f"{what} failed: {_said(d, 'error')}"
    if kind == "backup.verified":
        return f"{what} verified from {_said(d, 'repository')} in {_said(d, 'seconds')} s"
    if kind == "backup.verify_failed":
        return f"{what} failed verification: {_said(d, 'problem')}"
    if kind == "backup.copy_missing":
        return f"{what}: its copy in {_said(d, 'repository')} ({_said(d, 'label')}) is gone"
    if kind == "backup.pruned":
        return f"{what} removed by retention: {_said(d, 'reason')}"
    if kind == "backup.repository_checked":
        found = d.get("problems")
        if not found:
            return f"Repository {_said(d, 'repository')} of {_said(d, 'policy')} checked: sound"
        return (f"Repository {_said(d, 'repository')} of {_said(d, 'policy')} checked: "
                f"{_said(d, 'problems')} problem(s), {_said(d, 'problem')}")
    if kind == "backup.requested":
        return f"{_said(d, 'what')} of {_said(d, 'policy')} asked for"
    if kind == "backup.archive_broken":
        return (f"WAL archive of {_said(d, 'policy')} in {_said(d, 'repository')} broken: no restore after "
                f"{_said(d, 'since')}; {_said(d, 'reason')}")
    if kind == "backup.archive_restored":
        return f"WAL archive of {_said(d, 'policy')} in {_said(d, 'repository')} complete again"
    return f"{kind} {target}: {outcome}"


def _restore(kind: str, target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    purpose = _said(d, "purpose", "restore")
    if purpose not in ("restore", "verify", "drill", "failover"):
        purpose = "restore"
    what = f"{purpose.capitalize()} {_said(d, 'restore')} of {_said(d, 'policy')}"
    if kind == "restore.started":
        into = f" into {_said(d, 'target')}" if d.get("target") else ""
        return f"{what} started{into}" + (f", to {_said(d, 'to')}" if d.get("to") else "")
    if purpose == "drill" and d.get("rto_seconds") is not None:
        figures = (f"RTO {_said(d, 'rto_seconds')} s ({'met' if d.get('rto_met') is True else 'missed'}), "
                   f"RPO {_said(d, 'rpo_seconds')} s ({'met' if d.get('rpo_met') is True else 'missed'})")
        return f"{what} {'done' if kind == 'restore.succeeded' else 'failed'}: {figures}"
    if kind == "restore.succeeded":
        return f"{what} done in {_said(d, 'seconds', _said(d, 'total_seconds'))} s"
    return f"{what} failed: {_said(d, 'error')}"


def _promoted(kind: str, target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    where = target or "the database"
    return (f"Failover of {where}: {_said(d, 'new_primary', 'the standby')} promoted, "
            f"{_said(d, 'old_primary', 'the old primary')} fenced ({outcome})")


BACKUP_KINDS = ("backup.started", "backup.completed", "backup.failed", "backup.verified",
                "backup.verify_failed", "backup.copy_missing", "backup.pruned", "backup.repository_checked",
                "backup.requested", "backup.archive_broken", "backup.archive_restored")
RESTORE_KINDS = ("restore.started", "restore.succeeded", "restore.failed")
OTHER_KINDS = ("database.promoted",)


def describers() -> dict[str, Any]:
    """Each backup and restore event kind's sentence writer (target, service, outcome, details)."""
    found: dict[str, Any] = {}
    for kinds, writer in ((BACKUP_KINDS, _backup), (RESTORE_KINDS, _restore), (OTHER_KINDS, _promoted)):
        for kind in kinds:
            found[kind] = functools.partial(writer, kind)
    return found
