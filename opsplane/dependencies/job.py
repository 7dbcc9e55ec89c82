"""The `deps-audit` job: audit every service's packages, keep the findings, and report them.

Its report has a critical finding per finding past its due time, a warning per one still
within it, and an info line per low one (fixed with the next release), so the built-in rule
ReportCritical pages for a fix that is late; a service that could not be audited is a warning
with the reason, and a run in which no service could be audited is a failed report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from opsplane.dependencies import flows, service
from opsplane.dependencies.tables import DependencyFindingRow
from opsplane.reports.models import Finding, Report

if TYPE_CHECKING:
    from opsplane.clock import Clock
    from opsplane.config.models import Inventory
    from opsplane.reports.jobs import JobEnv
    from opsplane.store import Store

JOB = "deps-audit"


def _finding(row: DependencyFindingRow, now: datetime) -> Finding:
    late = service.overdue(row, now)
    severity = "critical" if late else ("info" if row.due_at is None else "warning")
    score = f"CVSS {row.cvss_score}" if row.cvss_score is not None else f"rated {row.rated_by}"
    fix = f", fixed in {', '.join(row.fix_versions)}" if row.fix_versions else ", no fixed version yet"
    what = (f"{row.vuln_id} in {row.package} {row.version}: {row.severity} ({score}){fix}; "
            f"{service.due_words(row, now)}")
    return Finding(severity, f"{row.service}: {row.package}", what, service.as_dict(row, now))  # type: ignore[arg-type]


def build_report(audited: list[flows.Audited], rows: list[DependencyFindingRow], changes: Mapping[str, int],
                 now: datetime) -> Report:
    """The report of one audit: the open findings as of `now`, and the sources that failed."""
    findings = [_finding(row, now) for row in rows]
    failed = [a for a in audited if a.error is not None]
    findings += [Finding("warning", f"{a.service}: {a.ecosystem}", f"not audited: {a.error}") for a in failed]
    late = sum(1 for row in rows if service.overdue(row, now))
    summary = (f"{len(rows)} open finding(s), {late} overdue; {changes['found']} new, "
               f"{changes['fixed']} fixed; {len(audited) - len(failed)} of {len(audited)} audit(s) ran")
    lines = [f"# Dependency audit, {now:%Y-%m-%d %H:%M} UTC", "", summary, "",
             "| service | package | version | vulnerability | severity | CVSS | due |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r.service} | {r.package} | {r.version} | {r.vuln_id} | {r.severity} | "
              f"{'-' if r.cvss_score is None else r.cvss_score} | {service.due_words(r, now)} |"
              for r in rows]
    if failed:
        lines += ["", "Not audited:", ""] + [f"- {a.service} ({a.ecosystem}): {a.error}" for a in failed]
    body = {"open": [service.as_dict(r, now) for r in rows], "changes": dict(changes),
            "audits": [{"service": a.service, "ecosystem": a.ecosystem, "sources": a.sources,
                        "error": a.error, "found": len(a.found), "skipped": a.skipped} for a in audited]}
    return Report(job=JOB, subject="dependencies", summary=summary, findings=tuple(findings), body=body,
                  markdown="\n".join(lines) + "\n", failed=bool(audited) and len(failed) == len(audited))


def audit_and_keep(inventory: Inventory, base_dir: Path, store: Store, clock: Clock,
                   names: Iterable[str] = (), *, environ: Mapping[str, str] | None = None,
                   actor: str = "opsplane",
                   progress: flows.Progress | None = None) -> Report | None:
    """Audit, fold the results into the findings, and report every open one; None when no
    service has anything to audit."""
    audited = flows.audit(inventory, base_dir, names, environ=environ, progress=progress)
    if not audited:
        return None
    now = clock.now()
    counts = {"found": 0, "fixed": 0}
    with store.session() as session:
        for one in audited:
            changes = service.reconcile(session, one, now=now, times=inventory.vulnerabilities.fix_times,
                                        actor=actor)
            counts["found"] += len(changes.found)
            counts["fixed"] += len(changes.fixed)
        session.flush()
        rows = service.open_findings(session)
        report = build_report(audited, rows, counts, now)
    return report


def run(env: JobEnv) -> Report | None:
    """The scheduled job: every service's dependencies."""
    return audit_and_keep(env.inventory, env.base_dir, env.store, env.clock, environ=env.environ,
                          actor=env.actor)
