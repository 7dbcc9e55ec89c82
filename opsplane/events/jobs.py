"""The event log's scheduled jobs: `audit-verify` (weekly: the chain walked, a broken one a
critical finding, so ReportCritical fires) and `audit-retention` (monthly: old events moved to
signed archives, expired archives deleted)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opsplane.reports.models import Finding, Report

if TYPE_CHECKING:
    from opsplane.reports.jobs import JobEnv

FINDINGS_LISTED = 20


def audit_verify(env: JobEnv) -> Report:
    """Walk the whole chain; record `events.verified`; each problem a critical finding."""
    from opsplane.events.verify import record_verified, verify_store

    verification = verify_store(env.store)
    with env.store.session() as session:
        record_verified(session, verification, actor=env.actor, now=env.clock.now())
    findings = tuple(Finding("critical", f"event {p.event_id}", p.what, {"wrong": p.wrong})
                     for p in verification.result.problems[:FINDINGS_LISTED])
    if not verification.intact and not findings:
        findings = (Finding("critical", "events", verification.summary()),)
    return Report(job="audit-verify", subject="events", summary=verification.summary(), findings=findings,
                  body=verification.as_dict())


def audit_retention(env: JobEnv) -> Report | None:
    """Move events older than `audit.at_hand` into a signed archive, delete archives older
    than `audit.keep`. None without an `audit:` section."""
    from opsplane.events.keys import signing_key
    from opsplane.events.retention import move_old_events

    settings = env.inventory.audit
    if settings is None:
        return None
    key = signing_key(env.environ)
    done = move_old_events(env.store, settings, env.base_dir, key, now=env.clock.now(), actor=env.actor)
    findings: list[Finding] = []
    if done.broken:
        findings.append(Finding("critical", "events", done.broken))
    if done.archive is not None:
        findings.append(Finding("info", done.archive.name, f"{done.moved:,} events archived; the chain now "
                                f"starts after event {done.checkpoint}"))
    findings.extend(Finding("info", path.name, "archive older than keep deleted") for path in done.deleted)
    if done.broken:
        summary = done.broken
    elif done.archive is not None:
        summary = f"{done.moved:,} events moved to {done.archive.name}"
    else:
        summary = "no events older than at_hand"
    if done.deleted:
        summary += f"; {len(done.deleted)} expired archive(s) deleted"
    return Report(job="audit-retention", subject=settings.archive_dir, summary=summary,
                  findings=tuple(findings), body={
                      "archive": done.archive.name if done.archive else None, "moved": done.moved,
                      "checkpoint": done.checkpoint, "deleted": [p.name for p in done.deleted],
                      "archives_kept": done.kept})
