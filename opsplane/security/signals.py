"""The `security-signals` job (daily, the manual's "check failed login attempts, monitor unusual
traffic patterns"): the services' sign-in and traffic lines of the last day, read from the
runtime's log files, added up by client address and judged (`logsignals.py`).

The findings name the clients: a brute force (many failed sign-ins from one address) is
critical, and so pages through the built-in ReportCritical rule; a client sending most of the
requests, or mostly refused ones, is a warning. The report's body lists the busiest clients
and the sources of failed sign-ins whatever it finds.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from opsplane.reports.models import Finding, Report
from opsplane.security.logsignals import GREP, Limits, Tally, judge, tally

if TYPE_CHECKING:
    from opsplane.config.models import Inventory
    from opsplane.reports.jobs import JobEnv

WINDOW = timedelta(hours=24)
WINDOW_WORDS = "24 h"


def limits(inventory: Inventory) -> Limits:
    """The job's thresholds, from the alert pack's (`alerting.builtin_rules.thresholds`)."""
    t = inventory.alerting.builtin_rules.thresholds
    return Limits(brute_force_logins=t.brute_force_logins, client_share=t.client_share,
                  client_min_requests=t.client_min_requests, share_exempt=tuple(t.share_exempt))


def run(env: JobEnv) -> Report | None:
    """The job: None when opsplane's runtime runs no service (no logs to read)."""
    from opsplane.drivers.runtime.factory import open_runtime
    from opsplane.runtime.selection import runnable

    services = list(runnable(env.inventory))
    if not services:
        return None
    driver = open_runtime(env.inventory, base_dir=env.base_dir, environ=env.environ, actor=env.actor)
    since = env.clock.now() - WINDOW
    texts = (line.text for service in services for line in driver.logs(service, since=since, grep=GREP))
    return report(tally(texts), limits(env.inventory), services=services)


def report(found: Tally, limits: Limits, *, services: list[str]) -> Report:
    """The report of what `found` says, judged by `limits`."""
    findings = tuple(judge(found, limits, window=WINDOW_WORDS))
    failed = found.logins.get("failed", 0)
    signed = found.logins.get("ok", 0)
    if not found.logins and not found.requests:
        summary = f"no sign-in or traffic lines in the services' logs over the last {WINDOW_WORDS}"
    else:
        worst = [f for f in findings if f.severity != "info"]
        clients = ", ".join(sorted({f.subject for f in worst}))
        summary = (f"{found.requests} requests, {signed} sign-ins, {failed} failed over the last "
                   f"{WINDOW_WORDS}; " + (f"{len(worst)} client(s) to look at: {clients}" if worst
                                          else "no client stands out"))
    body = {
        "window_hours": WINDOW.total_seconds() / 3600, "services": services, "requests": found.requests,
        "logins": dict(sorted(found.logins.items())),
        "top_clients": [c.as_dict() for c in found.busiest()],
        "failed_login_sources": [c.as_dict() for c in found.failed_login_sources()],
        "limits": {"brute_force_logins": limits.brute_force_logins, "client_share": limits.client_share,
                   "client_min_requests": limits.client_min_requests},
    }
    return Report(job="security-signals", subject="clients", summary=summary, findings=findings, body=body,
                  markdown=markdown(summary, found, findings))


def markdown(summary: str, found: Tally, findings: tuple[Finding, ...]) -> str:
    lines = ["# Security signals", "", summary, ""]
    if findings:
        lines += ["## Findings", ""]
        lines += [f"- **{f.severity}** `{f.subject}`: {f.what}" for f in findings]
        lines.append("")
    lines += ["## Busiest clients", "", "| client | requests | refused | failed sign-ins |",
              "|---|---|---|---|"]
    lines += [f"| {c.address} | {c.requests} | {c.denied} | {c.failed_logins} |" for c in found.busiest()]
    lines += ["", "## Failed sign-ins by client", "", "| client | failed | users tried |", "|---|---|---|"]
    lines += [f"| {c.address} | {c.failed_logins} | {', '.join(sorted(c.users)[:10])} |"
              for c in found.failed_login_sources()]
    return "\n".join(lines) + "\n"
