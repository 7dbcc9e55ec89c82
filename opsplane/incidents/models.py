"""The `incidents:` section of the inventory, and the values the incident domain passes around.

Where the section is absent, the operations manual decides: its severity table (P0: respond
in 5 minutes, resolve within an hour, update every 15 minutes, post-mortem within 24 hours;
P1: 15 minutes, 4 hours, every 30 minutes, post-mortem within 48 hours; P2: an hour, a day,
hourly, post-mortem optional; P3: next business day, a week, no updates, no post-mortem), and
firing P0 and P1 alerts open incidents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsplane.api.params import row_id
from opsplane.config.types import Duration
from opsplane.timefmt import parse_time

Severity = Literal["P0", "P1", "P2", "P3"]
SEVERITIES: tuple[Severity, ...] = ("P0", "P1", "P2", "P3")
OPENING: tuple[Severity, ...] = ("P0", "P1")
LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)]


class Status(StrEnum):
    """Where an incident stands. The last four are the status update template's words."""

    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"

    @property
    def is_open(self) -> bool:
        return self is not Status.RESOLVED


UPDATE_STATUSES = (Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING, Status.RESOLVED)


# --- the inventory's section -----------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeverityPolicy(_Strict):
    """What one severity promises: how fast someone responds, how fast it is fixed, how often
    people hear about it, and whether a post-mortem follows."""

    response_time: Duration = Field(description="Acknowledge within this long of the start.")
    resolution_target: Duration = Field(description="Resolve within this long of the start.")
    update_cadence: Duration | None = Field(
        None, description="A status update is due this long after the last one; unset: as needed, "
        "no reminders."
    )
    postmortem_within: Duration | None = Field(
        None, description="A post-mortem is required within this long of the resolution; unset: "
        "optional."
    )


DEFAULT_POLICIES: dict[Severity, SeverityPolicy] = {
    "P0": SeverityPolicy(response_time=300, resolution_target=3600, update_cadence=900,
                         postmortem_within=86400),
    "P1": SeverityPolicy(response_time=900, resolution_target=4 * 3600, update_cadence=1800,
                         postmortem_within=2 * 86400),
    "P2": SeverityPolicy(response_time=3600, resolution_target=86400, update_cadence=3600),
    "P3": SeverityPolicy(response_time=86400, resolution_target=7 * 86400),
}


class IncidentsSettings(_Strict):
    severities: dict[Severity, SeverityPolicy] = Field(
        default_factory=dict,
        description="Response time, resolution target, update cadence and post-mortem deadline by "
        "severity; a severity not given keeps the manual's (P0: 5m, 1h, every 15m, post-mortem "
        "within 24h; P1: 15m, 4h, every 30m, 48h; P2: 1h, 24h, hourly, optional; P3: 1d, 7d, none, "
        "none).",
    )
    open_for: list[Severity] = Field(
        default_factory=lambda: list(OPENING),
        description="Firing (and not muted) alerts of these severities open an incident, or join the "
        "open one of the same service and group.",
    )
    group_by: list[LabelName] = Field(
        default_factory=lambda: ["group"],
        description="Alert labels that, with `service`, decide which open incident a firing alert "
        "joins; a label an alert lacks counts as empty, so by default one incident per service.",
    )
    detection_lookback: Duration = Field(
        3600.0,
        description="For an incident opened by hand, how far back the first failing check or alert "
        "of its service is looked for (the start of detection, for MTTD).",
    )

    @model_validator(mode="after")
    def _no_duplicate_severities(self) -> IncidentsSettings:
        if len(set(self.open_for)) != len(self.open_for):
            raise ValueError("open_for: name each severity once")
        return self

    def policy(self, severity: str) -> SeverityPolicy:
        """The policy of `severity`, the manual's where the inventory gives none."""
        given = {str(key): value for key, value in self.severities.items()}
        return given.get(severity) or DEFAULT_POLICIES[severity]  # type: ignore[index]


# --- values ------------------------------------------------------------------------------------


def ref(incident_id: int) -> str:
    """How people and the event log name an incident: INC-12."""
    return f"INC-{incident_id}"


def parse_ref(text: str) -> int | None:
    """12 from '12', 'INC-12' or 'inc-12'; None when it is neither."""
    digits = text.strip()
    if digits.upper().startswith("INC-"):
        digits = digits[4:]
    return row_id(digits)  # ASCII digits, and no more than a store's 64-bit id can hold


@dataclass(frozen=True)
class AlertSignal:
    """A firing alert, as much of it as the incident domain needs."""

    fingerprint: str
    name: str
    severity: str
    service: str
    group: str
    summary: str
    active_at: datetime


@dataclass(frozen=True)
class IncidentView:
    """An incident as the pure core sees it (no session attached)."""

    id: int
    title: str
    service: str
    severity: str
    status: Status
    started_at: datetime
    detected_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    next_update_at: datetime | None = None
    reminded_for: datetime | None = None
    commander: str | None = None
    group_key: str = ""


@dataclass(frozen=True)
class ActionItem:
    id: int
    incident_id: int
    title: str
    owner: str
    due: date | None
    created_at: datetime
    done_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "incident": ref(self.incident_id), "title": self.title,
                "owner": self.owner, "due": self.due.isoformat() if self.due else None,
                "created_at": self.created_at.isoformat(),
                "done_at": self.done_at.isoformat() if self.done_at else None}


@dataclass(frozen=True)
class TimelineEntry:
    """One line of an incident's timeline, from one event of the log."""

    at: datetime
    kind: str
    what: str
    actor: str
    event_id: int
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind, "what": self.what,
                "actor": self.actor, "event_id": self.event_id}


def seconds(delta: timedelta | None) -> float | None:
    return None if delta is None else delta.total_seconds()


def parse_next_update(text: str, now: datetime) -> datetime:
    """When the next update is promised: '30m' from now, or an ISO 8601 time (UTC without an
    offset). ValueError with a message a person can act on otherwise."""

    from opsplane.config.types import parse_duration

    try:
        return now + timedelta(seconds=parse_duration(text))
    except (ValueError, OverflowError):  # OverflowError: a delay past the calendar's end
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise ValueError(f"cannot read next update {text!r}: give a delay such as 30m or an "
                         "ISO 8601 time") from None
