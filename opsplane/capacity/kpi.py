"""The performance KPIs (search, API and database latency, cache hit rate) against their targets.

Each KPI is one PromQL expression over the scraped series (`expression`): a latency is
`histogram_quantile` over the rate of its histogram's buckets across `window`, a ratio is the
rate of its good counter over its total's. `judge` places a value against the KPI's target,
warning and critical levels, `report` makes the job's Report, and `kpi_job` is the scheduled
job `kpi-report`, reading through the job's PromQL (serve's samples or the Prometheus).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from opsplane.capacity.models import Kpi, expression, resolve_kpis
from opsplane.config.types import format_duration
from opsplane.reports.models import Finding, Report

if TYPE_CHECKING:
    from opsplane.reports.jobs import JobEnv

Status = Literal["met", "missed", "warning", "critical", "unknown"]
JOB = "kpi-report"
SEVERITY = {"critical": "critical", "warning": "warning", "missed": "info", "unknown": "info"}


def judge(kpi: Kpi, value: float | None) -> Status:
    """Where `value` stands: met the target, missed it, past the warning or critical level,
    or unknown (no value: nothing was measured in the window)."""
    if value is None or not math.isfinite(value):
        return "unknown"
    sign = 1.0 if kpi.higher_is_worse else -1.0
    for level, status in ((kpi.critical, "critical"), (kpi.warning, "warning"), (kpi.target, "missed")):
        if sign * value > sign * level:
            return status  # type: ignore[return-value]
    return "met"


def shown(kpi: Kpi, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "no data"
    if kpi.kind == "latency":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    return f"{value * 100:.1f}%"


@dataclass(frozen=True)
class KpiResult:
    kpi: Kpi
    value: float | None
    status: Status
    expr: str

    def as_dict(self) -> dict[str, Any]:
        value = self.value if self.value is not None and math.isfinite(self.value) else None
        return {"name": self.kpi.name, "about": self.kpi.about, "kind": self.kpi.kind, "value": value,
                "shown": shown(self.kpi, self.value), "status": self.status, "target": self.kpi.target,
                "warning": self.kpi.warning, "critical": self.kpi.critical, "expr": self.expr}

    def sentence(self) -> str:
        kpi, word = self.kpi, "under" if self.kpi.higher_is_worse else "over"
        target = f"{word} {shown(kpi, kpi.target)}"
        if self.status == "unknown":
            return f"no data in the window (target {target})"
        if self.status == "met":
            return f"{shown(kpi, self.value)}, target {target} met"
        if self.status == "missed":
            return f"{shown(kpi, self.value)}, target {target} missed"
        level = kpi.critical if self.status == "critical" else kpi.warning
        past = "above" if kpi.higher_is_worse else "below"
        return (f"{shown(kpi, self.value)}, {past} its {self.status} level {shown(kpi, level)} "
                f"(target {target})")


def measure(kpis: Sequence[Kpi], window: float, query: Callable[[str], list[tuple[dict[str, str], float]]]
            ) -> list[KpiResult]:
    """Each KPI's value through `query` (PromQL at one instant) and its status."""
    results = []
    for kpi in kpis:
        expr = expression(kpi, window)
        found = [v for _, v in query(expr) if math.isfinite(v)]
        value = max(found, default=None) if kpi.higher_is_worse else min(found, default=None)
        results.append(KpiResult(kpi, value, judge(kpi, value), expr))
    return results


def report(results: Sequence[KpiResult], *, window: float, subject: str = "platform",
           job: str = JOB) -> Report:
    """The KPIs as a Report: a finding for each one not met (info when only its target is
    missed or nothing was measured), the figures in the body and as Markdown."""
    findings = tuple(Finding(SEVERITY[r.status], r.kpi.name, r.sentence(), r.as_dict())  # type: ignore[arg-type]
                     for r in results if r.status != "met")
    met = sum(1 for r in results if r.status == "met")
    known = sum(1 for r in results if r.status != "unknown")
    summary = f"{met} of {len(results)} KPIs met their targets over the last {format_duration(window)}"
    if known < len(results):
        summary += f"; {len(results) - known} without data"
    lines = [f"# KPIs over the last {format_duration(window)}", "", "| KPI | value | target | warning | "
             "critical | status |", "|---|---|---|---|---|---|"]
    for r in results:
        k = r.kpi
        lines.append(f"| {k.name} ({k.about}) | {shown(k, r.value)} | {shown(k, k.target)} | "
                     f"{shown(k, k.warning)} | {shown(k, k.critical)} | {r.status} |")
    return Report(job=job, subject=subject, summary=summary, findings=findings,
                  body={"window": window, "kpis": [r.as_dict() for r in results]},
                  markdown="\n".join(lines) + "\n")


def kpi_report(env: JobEnv, *, window: float | None = None) -> Report:
    settings = env.inventory.capacity
    span = window if window is not None else (settings.window if settings is not None else 3600.0)
    at = env.clock.now().timestamp()
    results = measure(resolve_kpis(settings), span, lambda expr: env.query(expr, at))
    return report(results, window=span)


def kpi_job(env: JobEnv) -> Report | None:
    """The scheduled job `kpi-report`: the KPIs over the configured window."""
    return kpi_report(env)
