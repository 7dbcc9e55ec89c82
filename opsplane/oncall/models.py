"""The `oncall:` section of the inventory: people, schedules, escalation policies.

Where the section is absent or partly given, the operations manual decides: a weekly rotation
with a primary and a secondary, and escalation by severity as its alert routing and escalation
matrix say (P0: page the primary at once by PagerDuty, SMS and phone and post in #incidents,
the secondary after 5 minutes, then team lead, platform lead and VP of engineering; P1: the
primary, the secondary after 15 minutes, then the team lead; P2 and P3: channels only).
"""

from __future__ import annotations

from collections.abc import Container
from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from opsplane.config.types import Duration, TimeOfDay, TimeZone, Wait

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TARGET_KINDS = ("layer", "schedule", "person", "role", "channel")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContactKind(StrEnum):
    """How a person is reached; the notification channels deliver to these addresses."""

    EMAIL = "email"
    PHONE = "phone"
    SMS = "sms"
    SLACK = "slack"
    PAGERDUTY = "pagerduty"


def _target(value: str) -> str:
    kind, sep, rest = value.partition(":")
    if not sep or kind not in TARGET_KINDS or not rest:
        raise ValueError(
            f"invalid target {value!r}: expected layer:<layer>, schedule:<schedule>/<layer>, "
            "person:<name>, role:<role> or channel:<name>"
        )
    if kind == "schedule" and (rest.count("/") != 1 or rest.startswith("/") or rest.endswith("/")):
        raise ValueError(f"invalid target {value!r}: expected schedule:<schedule>/<layer>")
    return value


Target = Annotated[str, AfterValidator(_target)]


class Person(_Strict):
    name: str | None = Field(None, description="Display name; defaults to the key.")
    team: str | None = Field(None, description="The team the person belongs to.")
    contact: dict[ContactKind, str] = Field(
        default_factory=dict,
        description="Address per contact kind: email, phone, sms, slack (user), pagerduty (user id).",
    )


class Layer(_Strict):
    rotation: list[Name] = Field(
        min_length=1, description="People in the order they take the weekly shift."
    )
    start: date = Field(
        description="The first shift begins at the first handoff on or after this local date; "
        "rotation[0] has it."
    )


class Handoff(_Strict):
    day: Weekday = Field("mon", description="Weekday of the handoff (mon ... sun).")
    time: TimeOfDay = Field(time(9, 0), description="Local time of the handoff, such as 09:00.")


class ScheduleOverride(_Strict):
    layer: Name = Field(description="The layer whose person is replaced.")
    person: Name = Field(description="Who is on call instead.")
    start: datetime = Field(
        description="When the override begins; without an offset, in the schedule's zone."
    )
    end: datetime = Field(description="When it ends (exclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleOverride:
        if (self.start.tzinfo is None) != (self.end.tzinfo is None):
            raise ValueError("give both start and end with an offset, or neither")
        if self.end <= self.start:
            raise ValueError("an override must end after it starts")
        return self


class Schedule(_Strict):
    timezone: TimeZone = Field("UTC", description="IANA time zone of the handoff, such as Europe/Berlin.")
    handoff: Handoff = Field(default_factory=Handoff, description="When the weekly shift changes.")
    layers: dict[Name, Layer] = Field(
        min_length=1, description="Layers by name, such as primary and secondary."
    )
    overrides: list[ScheduleOverride] = Field(
        default_factory=list,
        description="Planned replacements; `opsplane oncall override` records more in the event log.",
    )


class EscalationStep(_Strict):
    delay: Wait = Field(
        0.0, description="Wait after the previous step (for the first step: after the trigger)."
    )
    notify: list[Target] = Field(
        min_length=1,
        description="layer:<layer> (of the policy's schedule), schedule:<schedule>/<layer>, "
        "person:<name>, role:<role> or channel:<name>.",
    )
    via: list[ContactKind] = Field(
        default_factory=lambda: [ContactKind.PAGERDUTY],
        min_length=1,
        description="Contact methods used for the people of this step, those they have.",
    )


class EscalationPolicy(_Strict):
    schedule: Name | None = Field(
        None, description="Schedule of the `layer:` targets; default the first schedule."
    )
    steps: list[EscalationStep] = Field(min_length=1)
    repeat: int = Field(0, ge=0, le=20, description="Times the steps run again after the last one.")
    repeat_after: Duration = Field(
        1800.0, description="Wait after the last step before the steps start again."
    )


_PAGE_CALL = [ContactKind.PAGERDUTY, ContactKind.SMS, ContactKind.PHONE]
_PAGE = [ContactKind.PAGERDUTY]
DEFAULT_POLICIES: dict[str, EscalationPolicy] = {
    "p0": EscalationPolicy(steps=[
        EscalationStep(delay=0, notify=["layer:primary", "channel:incidents"], via=_PAGE_CALL),
        EscalationStep(delay=300, notify=["layer:secondary"], via=_PAGE_CALL),
        EscalationStep(delay=1500, notify=["role:team_lead"], via=_PAGE_CALL),
        EscalationStep(delay=900, notify=["role:platform_lead"], via=_PAGE_CALL),
        EscalationStep(delay=900, notify=["role:vp_engineering"], via=_PAGE_CALL),
    ]),
    "p1": EscalationPolicy(steps=[
        EscalationStep(delay=0, notify=["layer:primary", "channel:alerts"], via=_PAGE),
        EscalationStep(delay=900, notify=["layer:secondary"], via=_PAGE),
        EscalationStep(delay=900, notify=["role:team_lead"], via=_PAGE),
    ]),
    "p2": EscalationPolicy(steps=[
        EscalationStep(delay=0, notify=["channel:alerts", "channel:ops-team"], via=[ContactKind.EMAIL]),
    ]),
    "p3": EscalationPolicy(steps=[
        EscalationStep(delay=0, notify=["channel:ops-team"], via=[ContactKind.EMAIL]),
    ]),
}
DEFAULT_SEVERITIES: dict[str, str] = {"P0": "p0", "P1": "p1", "P2": "p2", "P3": "p3"}
Severity = Literal["P0", "P1", "P2", "P3"]


class OncallSettings(_Strict):
    people: dict[Name, Person] = Field(default_factory=dict, description="Everyone who can be paged.")
    roles: dict[Name, Name] = Field(
        default_factory=dict,
        description="Escalation roles to people, such as team_lead, platform_lead, vp_engineering.",
    )
    schedules: dict[Name, Schedule] = Field(default_factory=dict)
    policies: dict[Name, EscalationPolicy] = Field(
        default_factory=dict,
        description="Escalation policies by name; p0 ... p3 are built in (docs/oncall.md) and may be "
        "replaced.",
    )
    severities: dict[Severity, Name] = Field(
        default_factory=dict,
        description="The policy each severity uses; default P0: p0, P1: p1, P2: p2, P3: p3.",
    )
    contact_channels: dict[ContactKind, Name] = Field(
        default_factory=dict,
        description="The notification channel that reaches each contact kind, such as email: "
        "ops-mail, sms: sms-gateway; a kind not given uses the channel of the same name, if any.",
    )

    def channel_for(self, kind: ContactKind, channels: Container[str]) -> str | None:
        """The channel that delivers to a person's `kind` address; None when none is defined."""
        named = self.contact_channels.get(kind, str(kind))
        return named if named in channels else None

    def all_policies(self) -> dict[str, EscalationPolicy]:
        """The built-in policies with the inventory's own on top (same name: the inventory's)."""
        return {**DEFAULT_POLICIES, **self.policies}

    def policy_name_for(self, severity: str) -> str:
        """The name of the policy that `severity` (P0 ... P3) escalates by."""
        given = {str(key): value for key, value in self.severities.items()}
        return given.get(severity) or DEFAULT_SEVERITIES[severity]

    def policy_for(self, severity: str) -> EscalationPolicy:
        """The escalation policy of `severity`; KeyError for a severity that is not P0 ... P3."""
        return self.all_policies()[self.policy_name_for(severity)]

    def display_name(self, person: str) -> str:
        found = self.people.get(person)
        return (found.name if found else None) or person
