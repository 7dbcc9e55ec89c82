"""A report: what one run of a job found, as findings with a severity, and the job's own body.

Every maintenance, security and capacity job (the database report, the pool advice, the cache
report, the dependency audit, the access review, the capacity forecast, ...) returns one
`Report`. Its outcome is the worst of its findings, so `serve` can store it, record it as an
event and publish one series per job and severity for the alert rules, whatever the job is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, field_validator

from opsplane.checklists.models import ChecklistSchedule
from opsplane.config.types import Duration, Strict, zone

Severity = Literal["info", "warning", "critical"]
Outcome = Literal["ok", "warning", "critical", "failed"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


@dataclass(frozen=True)
class Finding:
    """One thing a job found: how bad, about what (a table, a key, a token, a service), what."""

    severity: Severity
    subject: str
    what: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "subject": self.subject, "what": self.what, "detail": self.detail}


@dataclass(frozen=True)
class Report:
    """What one run of a job found: `summary` in a sentence, the findings, the job's own body
    (JSON) and the same as Markdown for a person. `failed` is set when the job could not look
    (a server unreachable): the reason is the summary, never a traceback."""

    job: str
    subject: str
    summary: str
    findings: tuple[Finding, ...] = ()
    body: dict[str, Any] = field(default_factory=dict)
    markdown: str = ""
    failed: bool = False

    @property
    def outcome(self) -> Outcome:
        if self.failed:
            return "failed"
        worst = max((SEVERITIES.index(f.severity) for f in self.findings), default=0)
        return ("ok", "warning", "critical")[worst]

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES}


def exit_code(outcome: str) -> int:
    """0 nothing found, 1 a warning, 2 critical or the job failed to look."""
    return {"ok": 0, "warning": 1}.get(outcome, 2)


class JobsSettings(Strict):
    """The inventory's `jobs:` section: present (even empty), `serve` runs the maintenance,
    security and capacity jobs at the manual's cadence and stores each report."""

    timezone: str = Field("UTC", description="The wall clock the schedules follow (an IANA name).")
    late: Duration = Field(3600.0, description="How late `serve` still runs a job whose time passed "
                           "while it was not running; one missed by more waits for its next time.")
    schedules: dict[str, ChecklistSchedule] = Field(
        default_factory=dict, description="By job name (`opsplane report jobs` lists them): when it runs, "
        "`at` a time every day or a `cron` expression, or `enabled: false`. A job not named here runs at "
        "the manual's time.")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return zone(value)
