"""The built-in rules: the operations manual's alert tables (MON-2, MON-3, MON-4) as PromQL.

Service and business rules read the metrics the reference shop exposes
(`http_requests_total{status}`, `http_request_duration_seconds`, `orders_total`,
`payments_total`, `search_queries_total`, `db_pool_*`); machine rules read the standard
node, PostgreSQL and Redis exporters' names; DatabaseDown and CheckFailing also read
opsplane's own health checks (`opsplane_check_failures`), and ServiceNotRunning what opsplane's
runtime says of the processes it runs (`opsplane_service_not_running`). Each warning level is
P2 and each critical level P1, as the manual pages on critical and notifies on warning.
Thresholds, the common `for`, the rate window of the service rules and the runbook prefix come
from `alerting.builtin_rules`. A rule that opsplane ships a runbook for names it (`RUNBOOKS`),
so that its notifications say how to run it. The business rules keep their 15-minute windows whatever the
window: orders, charges and searches are far rarer than requests, and a short window of
them would page on a single failed checkout.

The manual's "service uptime < 99.9%" is left out: measured over the one-hour window that
opsplane keeps, a single failed scrape already breaks it, which would page on noise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from opsplane.alerts.models import AlertingSettings, AlertRule, PackThresholds, RulePack
from opsplane.runbooks.models import run_command
from opsplane.units import Unit

BY = "service, env"
REQUESTS = "http_requests_total"
ERRORS = 'http_requests_total{status=~"5.."}'
GATEWAY = 'http_requests_total{service="gateway"}'
GATEWAY_ERRORS = 'http_requests_total{service="gateway",status=~"5.."}'
COMPLETED_ORDERS = 'orders_total{status="completed"}'
FAILED_PAYMENTS = 'payments_total{status="error"}'
FAILED_SEARCHES = 'search_queries_total{result="error"}'
CPU_BUSY = '1 - avg by (instance, service, env) (rate(node_cpu_seconds_total{mode="idle"}[5m]))'
DISK_USED = (
    '1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"} '
    '/ node_filesystem_size_bytes{fstype!~"tmpfs|overlay"}'
)
# Each rule's `unit` writes {{ $value }} as people read it (4.76%, 512 ms); the export spells
# it with Prometheus's humanize functions.
VALUE = "{{ $value }}"
# opsplane's own probes, as `serve` feeds them to the rules: one series per check that has
# found its component CRITICAL, valued by how many runs in a row did (docs/alerting.md)
CHECK_FAILURES = "opsplane_check_failures"
# the services opsplane's runtime runs and has given up on: every instance exited and none
# will be started again (`restart: never` after a failure, or `max_restarts` reached)
NOT_RUNNING = "opsplane_service_not_running"
# the backup domain's series (opsplane/backup/series.py): present only while something is wrong
BACKUP_FAILED = "opsplane_backup_failed"
BACKUP_STALE = "opsplane_backup_stale_seconds"
BACKUP_VERIFY_FAILED = "opsplane_backup_verify_failed"
BACKUP_OFFSITE_MISSING = "opsplane_backup_offsite_missing"
BACKUP_DRILL_OVERDUE = "opsplane_backup_drill_overdue_seconds"
BACKUP_PITR_BROKEN = "opsplane_backup_pitr_broken_seconds"
# the scheduled jobs' last reports (opsplane/reports/worker.py): findings by severity, failures
REPORT_FINDINGS = "opsplane_report_findings"
REPORT_FAILED = "opsplane_report_failed"
# sign-ins and refusals (SEC-2): the shop's gateway counts its sign-ins by result; every
# service counts its answers by status code
FAILED_LOGINS = 'shop_logins_total{result="failed"}'
DENIED = 'http_requests_total{status=~"401|403"}'
NOT_FOUND = 'http_requests_total{status="404"}'
BUSINESS_WINDOW = "15m"
# The runbook opsplane ships for a rule (opsplane/runbooks/builtin/), and the parameter the
# alert's `service` label fills in the command a notification shows. Rules without one link to
# `runbooks/{rule-name}.md`.
RUNBOOKS = {
    "CheckFailing": ("service-down", "service"),
    "ServiceNotRunning": ("service-down", "service"),
    "DatabaseDown": ("database-failure-recovery", "database"),
    "HighErrorRate": ("high-error-rate", "service"),
    "LowGatewaySuccess": ("high-error-rate", "service"),
    "HighLatencyP95": ("high-response-time", "service"),
    "HighLatencyP99": ("high-response-time", "service"),
    "DiskSpaceLow": ("disk-full", "host"),
    "HighDiskUsage": ("disk-full", "host"),
    "HighCpuUsage": ("high-cpu", "host"),
    "HighMemoryUsage": ("high-memory", "host"),
    "HighDbPoolUsage": ("database-issues", "service"),
    "HighRedisMemory": ("cache-issues", "cache"),
}
LINKS = "runbooks/"
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def prometheus_duration(seconds: float) -> str:
    """A duration as Prometheus writes it, in whole units: 90 -> '1m30s', 0.25 -> '250ms'."""
    millis = round(seconds * 1000)
    if millis <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _ratio(part: str, whole: str, window: str) -> str:
    return f"sum by ({BY}) (rate({part}[{window}])) / sum by ({BY}) (rate({whole}[{window}]))"


def _per_minute(series: str, window: str) -> str:
    return f"sum by ({BY}) (rate({series}[{window}])) * 60"


def _quantile(q: float, window: str) -> str:
    return (f"histogram_quantile({q}, sum by ({BY}, le) "
            f"(rate(http_request_duration_seconds_bucket[{window}])))")


def _rule(name: str, severity: str, expr: str, summary: str, unit: Unit, **extra: Any) -> dict[str, Any]:
    return {"name": name, "severity": severity, "expr": expr, "summary": summary, "unit": unit, **extra}


def _definitions(t: PackThresholds, window: str) -> list[dict[str, Any]]:
    """Each rule as a dict; `for` is present only where it differs from the pack's.
    `window` is the service rules' rate window; RequestRateDrop compares it with the same
    window 15 minutes earlier."""
    rules = [
        _rule("DatabaseDown", "P0",
              f'pg_up == 0 or {CHECK_FAILURES}{{section="databases"}} >= {t.check_failures}',
              "PostgreSQL {{ $labels.service }} does not answer", Unit.COUNT, **{"for": None}),
        _rule("CheckFailing", "P1", f'{CHECK_FAILURES}{{section!="databases"}} >= {t.check_failures}',
              "{{ $labels.service }}: check {{ $labels.check }} failed {{ $value }} times in a row",
              Unit.COUNT, **{"for": None}),
        # The runtime saw the process end and will not start it again: certain, so at once. A
        # critical component's outage is the manual's P0 ("payment processing completely
        # broken"), any other's its P1 ("single microservice down").
        _rule("ServiceNotRunning", "P0", f'{NOT_RUNNING}{{criticality="critical"}} > 0',
              "{{ $labels.service }} has exited and the runtime will not start it again", Unit.COUNT,
              **{"for": None}),
        _rule("ServiceNotRunning", "P1", f'{NOT_RUNNING}{{criticality!="critical"}} > 0',
              "{{ $labels.service }} has exited and the runtime will not start it again", Unit.COUNT,
              **{"for": None}),
        _rule("HighErrorRate", "P1", f"{_ratio(ERRORS, REQUESTS, window)} > {t.error_rate:g}",
              f"{{{{ $labels.service }}}} answers {VALUE} of requests with 5xx", Unit.RATIO),
        _rule("HighLatencyP95", "P2", f"{_quantile(0.95, window)} > {t.latency_p95:g}",
              f"{{{{ $labels.service }}}} p95 latency is {VALUE}", Unit.SECONDS),
        _rule("HighLatencyP99", "P1", f"{_quantile(0.99, window)} > {t.latency_p99:g}",
              f"{{{{ $labels.service }}}} p99 latency is {VALUE}", Unit.SECONDS),
        _rule("RequestRateDrop", "P0",
              f"sum by ({BY}) (rate({REQUESTS}[{window}])) < {1 - t.request_rate_drop:g} * "
              f"sum by ({BY}) (rate({REQUESTS}[{window}] offset 15m))",
              f"requests to {{{{ $labels.service }}}} fell to {VALUE}, far fewer than 15 minutes ago",
              Unit.PER_SECOND),
        _rule("DiskSpaceLow", "P2", f"{DISK_USED} > {t.disk_space_low:g}",
              f"{{{{ $labels.mountpoint }}}} is {VALUE} full", Unit.RATIO),
        _rule("LowOrderCompletion", "P2",
              f"{_ratio(COMPLETED_ORDERS, 'orders_total', BUSINESS_WINDOW)} < {t.order_completion:g}",
              f"only {VALUE} of checkouts complete", Unit.RATIO),
        _rule("LowPaymentSuccess", "P1",
              f"1 - {_ratio(FAILED_PAYMENTS, 'payments_total', BUSINESS_WINDOW)} < {t.payment_success:g}",
              f"only {VALUE} of charges go through without error", Unit.RATIO),
        _rule("LowSearchSuccess", "P2",
              f"1 - {_ratio(FAILED_SEARCHES, 'search_queries_total', BUSINESS_WINDOW)} "
              f"< {t.search_success:g}",
              f"only {VALUE} of searches succeed", Unit.RATIO),
        _rule("LowGatewaySuccess", "P1",
              f"1 - {_ratio(GATEWAY_ERRORS, GATEWAY, window)} < {t.gateway_success:g}",
              f"the gateway answers only {VALUE} of requests without 5xx", Unit.RATIO),
    ]
    # Security signals (docs/security.md): many failed sign-ins, refusals or 404s a minute at
    # one service. Which client sends them is in the services' logs, not in metric labels
    # (one series per address would be unbounded): the `security-signals` job names it.
    rules += [
        _rule("FailedLoginSpike", "P2",
              f"{_per_minute(FAILED_LOGINS, window)} > {t.failed_logins_per_minute:g}",
              f"{{{{ $labels.service }}}}: {VALUE} failed sign-ins a minute (brute force? "
              "opsplane report run security-signals names the clients)", Unit.COUNT),
        _rule("AuthDeniedSpike", "P2", f"{_per_minute(DENIED, window)} > {t.denied_per_minute:g}",
              f"{{{{ $labels.service }}}} refuses {VALUE} requests a minute with 401 or 403", Unit.COUNT),
        _rule("NotFoundScan", "P3",
              f"{_per_minute(NOT_FOUND, window)} > {t.not_found_per_minute:g} "
              f"and {_ratio(NOT_FOUND, REQUESTS, window)} > {t.not_found_share:g}",
              f"{{{{ $labels.service }}}} answers {VALUE} requests a minute with 404 (a scan?)", Unit.COUNT),
    ]
    # Backups: the manual's BackupFailed, and what makes a backup policy fall short of its
    # promise (decision 0025). Each is certain when its series exists, so none waits.
    rules += [
        _rule("BackupFailed", "P1", f"{BACKUP_FAILED} > 0",
              "the last {{ $labels.kind }} backup of {{ $labels.policy }} failed "
              "({{ $value }} in a row)", Unit.COUNT, **{"for": None}),
        _rule("BackupStale", "P2", f"{BACKUP_STALE} > 0",
              "{{ $labels.policy }}: the newest recoverable point in {{ $labels.repository }} is "
              f"{VALUE} old, beyond its RPO", Unit.SECONDS, **{"for": None}),
        _rule("VerifyFailed", "P1", f"{BACKUP_VERIFY_FAILED} > 0",
              "{{ $labels.policy }}: the newest backup did not restore and check cleanly", Unit.COUNT,
              **{"for": None}),
        _rule("OffsiteCopyMissing", "P2", f"{BACKUP_OFFSITE_MISSING} > 0",
              "{{ $labels.policy }}: {{ $labels.repository }} holds no good offsite copy", Unit.COUNT,
              **{"for": None}),
        _rule("DrillOverdue", "P3", f"{BACKUP_DRILL_OVERDUE} > 0",
              f"{{{{ $labels.policy }}}}: the restore drill is {VALUE} overdue", Unit.SECONDS,
              **{"for": None}),
        _rule("PointInTimeBroken", "P1", f"{BACKUP_PITR_BROKEN} > 0",
              "{{ $labels.policy }}: WAL archiving to {{ $labels.repository }} is broken: no restore "
              f"to a moment after {{{{ $labels.since }}}} is possible (for {VALUE})", Unit.SECONDS,
              **{"for": None}),
    ]
    # The scheduled jobs: a report with a critical finding (a table never vacuumed, a pool that
    # makes clients wait, an overdue vulnerability) is worked on today; a job that could not look
    # at all is a ticket. The series stays until the job's next report, so neither waits.
    rules += [
        _rule("ReportCritical", "P2", f'{REPORT_FINDINGS}{{severity="critical"}} > 0',
              "the last {{ $labels.report }} report found {{ $value }} critical "
              "(opsplane report list --job {{ $labels.report }})", Unit.COUNT, **{"for": None}),
        _rule("ReportFailed", "P3", f"{REPORT_FAILED} > 0",
              "the last {{ $labels.report }} job could not run (opsplane report list --job "
              "{{ $labels.report }})", Unit.COUNT, **{"for": None}),
    ]
    levels = [
        ("HighCpuUsage", CPU_BUSY, t.cpu_warning, t.cpu_critical, "CPU"),
        ("HighMemoryUsage", "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
         t.memory_warning, t.memory_critical, "memory"),
        ("HighDiskUsage", DISK_USED, t.disk_warning, t.disk_critical, "disk {{ $labels.mountpoint }}"),
        ("HighDbPoolUsage", "db_pool_connections_in_use / (db_pool_size > 0)",
         t.db_pool_warning, t.db_pool_critical, "database pool"),
        ("HighRedisMemory", "redis_memory_used_bytes / (redis_memory_max_bytes > 0)",
         t.redis_memory_warning, t.redis_memory_critical, "Redis memory"),
    ]
    for name, expr, warning, critical, what in levels:
        for severity, threshold, level in (("P2", warning, "warning"), ("P1", critical, "critical")):
            rules.append(_rule(name, severity, f"{expr} > {threshold:g}",
                               f"{what} at {VALUE} on {{{{ $labels.instance }}}} "
                               f"({level} above {threshold:.0%})", Unit.RATIO))
    return rules


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def _runbook(name: str, base: str | None) -> tuple[str, dict[str, str]]:
    """A rule's `runbook` and the annotation that says how to run it: the shipped runbook by
    name, with its parameter from the alert's labels; a link under `base` when it is set."""
    if base is None and name in RUNBOOKS:
        runbook, parameter = RUNBOOKS[name]
        return runbook, {"runbook": run_command(runbook, {parameter: "{{ $labels.service }}"})}
    return f"{LINKS if base is None else base}{_slug(name)}.md", {}


def builtin_rules(pack: RulePack) -> list[AlertRule]:
    """The manual's rules with the pack's thresholds, `for`, window and runbooks."""
    rules = []
    for rule in _definitions(pack.thresholds, prometheus_duration(pack.window)):
        hold = pack.for_ if "for" not in rule else rule["for"]
        runbook, how = _runbook(rule["name"], pack.runbook_base)
        rules.append(AlertRule.model_validate({
            "name": rule["name"], "expr": rule["expr"], "severity": rule["severity"], "for": hold,
            "unit": rule["unit"],
            "annotations": {"summary": rule["summary"], **how},
            "runbook": runbook,
        }))
    return rules


def effective_rules(settings: AlertingSettings, generated: Sequence[AlertRule] = ()) -> list[AlertRule]:
    """Every rule to evaluate: the built-in ones that `rules` does not replace (same name and
    severity), then `rules`, then the `generated` ones (the SLOs' burn-rate rules)."""
    if not settings.builtin_rules.enabled:
        return [*settings.rules, *generated]
    own = {(r.name, r.severity) for r in settings.rules}
    kept = [r for r in builtin_rules(settings.builtin_rules) if (r.name, r.severity) not in own]
    return [*kept, *settings.rules, *generated]
