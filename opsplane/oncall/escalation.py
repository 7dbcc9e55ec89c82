"""Escalation timing: which notifications a policy makes due, and to whom, at any instant.

Pure functions of the policy, the roster, the trigger time, when the incident was settled
(acknowledged, or resolved without an acknowledgement) and `now`. `due` is the escalation's
course, every step that fell due before it stopped; `owed` is what paging must have sent by
`now`, which is nothing at all once the incident is settled. Each step's people are resolved
at the moment the step falls due, so an escalation that runs across a handoff pages the
person on call then.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsplane.oncall.models import ContactKind, EscalationPolicy
from opsplane.oncall.rotation import Roster


@dataclass(frozen=True)
class Recipient:
    """One resolved target of a step: a person with the contact methods to use, a channel,
    or (with `problem` set) a target that names no one right now."""

    target: str
    kind: str  # "person", "channel" or "unresolved"
    name: str
    display_name: str
    contacts: tuple[tuple[ContactKind, str], ...] = ()
    because: str = ""
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "name": self.name,
                "display_name": self.display_name, "because": self.because, "problem": self.problem,
                "contacts": [{"kind": str(kind), "address": address} for kind, address in self.contacts]}


@dataclass(frozen=True)
class PlannedStep:
    """When a step of a policy falls due, counted from the trigger."""

    at: datetime
    offset: timedelta
    round: int  # 0 for the first pass, 1 for the first repeat ...
    step: int


@dataclass(frozen=True)
class Notification:
    """A step that is due: its time and whom it reaches."""

    at: datetime
    offset: timedelta
    round: int
    step: int
    recipients: tuple[Recipient, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "offset_seconds": self.offset.total_seconds(),
                "round": self.round, "step": self.step,
                "recipients": [r.as_dict() for r in self.recipients]}


def plan(policy: EscalationPolicy, *, triggered_at: datetime) -> list[PlannedStep]:
    """Every step of every round, in time order, as if no one ever acknowledged."""
    return list(_planned(policy, triggered_at))


def _planned(policy: EscalationPolicy, triggered_at: datetime) -> Iterator[PlannedStep]:
    offset = timedelta(0)
    for round_ in range(policy.repeat + 1):
        if round_:
            offset += timedelta(seconds=policy.repeat_after)
        for index, step in enumerate(policy.steps):
            if round_ == 0 or index:
                offset += timedelta(seconds=step.delay)
            yield PlannedStep(triggered_at + offset, offset, round_, index)


def due(
    policy: EscalationPolicy,
    roster: Roster,
    *,
    triggered_at: datetime,
    now: datetime,
    acked_at: datetime | None = None,
) -> list[Notification]:
    """The notifications due by `now` (inclusive). An acknowledgement stops every step that
    falls due at or after it: a step and an ack at the same instant is answered, not paged."""
    notifications = []
    for planned in _planned(policy, triggered_at):
        if planned.at > now or (acked_at is not None and planned.at >= acked_at):
            break
        recipients = resolve_step(policy, planned.step, roster, at=planned.at)
        notifications.append(Notification(planned.at, planned.offset, planned.round, planned.step,
                                          recipients))
    return notifications


def owed(
    policy: EscalationPolicy,
    *,
    triggered_at: datetime,
    now: datetime,
    settled_at: datetime | None = None,
) -> list[PlannedStep]:
    """The steps whose people must have been paged by `now`, in time order.

    None once the incident was settled at or before `now`: a page is a request for an answer,
    and a step that fell due before the answer but is only being sent now (paging ran late)
    would wake someone for an incident that someone already holds. Otherwise every step due
    by `now`, except one whose later round is due too: a long outage of the control plane
    does not replay every round. The policy is the one in force at `now`; a policy that
    replaces another mid-escalation (a raised severity) counts from the same trigger, so its
    steps that are already due are owed at once.
    """
    if settled_at is not None and settled_at <= now:
        return []
    steps = [p for p in _planned(policy, triggered_at) if p.at <= now]
    last_round: dict[int, int] = {}
    for planned in steps:
        last_round[planned.step] = planned.round
    return [p for p in steps if p.round == last_round[p.step]]


def next_due(
    policy: EscalationPolicy,
    *,
    triggered_at: datetime,
    now: datetime,
    acked_at: datetime | None = None,
) -> datetime | None:
    """When the next step falls due after `now`, or None when the escalation is over
    (acknowledged, or every round done)."""
    if acked_at is not None and acked_at <= now:
        return None
    for planned in _planned(policy, triggered_at):
        if acked_at is not None and planned.at >= acked_at:
            return None
        if planned.at > now:
            return planned.at
    return None


def resolve_step(
    policy: EscalationPolicy, step: int, roster: Roster, *, at: datetime
) -> tuple[Recipient, ...]:
    """Whom step `step` of `policy` reaches at `at`."""
    spec = policy.steps[step]
    found: list[Recipient] = []
    for target in spec.notify:
        found.append(resolve_target(target, roster, at=at, via=spec.via, schedule=policy.schedule))
    return tuple(found)


def resolve_target(
    target: str,
    roster: Roster,
    *,
    at: datetime,
    via: list[ContactKind],
    schedule: str | None = None,
) -> Recipient:
    """One target as a recipient at `at`. `schedule` is the schedule of `layer:` targets
    (default: the inventory's first)."""
    kind, _, rest = target.partition(":")
    settings = roster.settings
    if kind == "channel":
        return Recipient(target, "channel", rest, rest, because="channel")
    if kind in ("layer", "schedule"):
        if kind == "layer":
            schedule_name = schedule or next(iter(settings.schedules), None)
            layer = rest
        else:
            schedule_name, _, layer = rest.partition("/")
        if schedule_name is None:
            return _unresolved(target, "no on-call schedule is defined")
        if schedule_name not in settings.schedules:
            return _unresolved(target, f"no schedule {schedule_name!r}")
        if layer not in settings.schedules[schedule_name].layers:
            return _unresolved(target, f"schedule {schedule_name!r} has no layer {layer!r}")
        shift = roster.on_call(schedule_name, layer, at)
        return _person(target, shift.person, roster, via, f"{layer} of {schedule_name}")
    if kind == "role":
        person = settings.roles.get(rest)
        if person is None:
            return _unresolved(target, f"no one holds the role {rest!r}")
        return _person(target, person, roster, via, rest.replace("_", " "))
    return _person(target, rest, roster, via, "named")


def _person(target: str, person: str, roster: Roster, via: list[ContactKind], because: str) -> Recipient:
    spec = roster.settings.people.get(person)
    if spec is None:
        return _unresolved(target, f"unknown person {person!r}")
    contacts = tuple((kind, spec.contact[kind]) for kind in via if kind in spec.contact)
    problem = None if contacts else (
        f"{person} has none of the contact methods {', '.join(map(str, via))}"
    )
    return Recipient(target, "person", person, spec.name or person, contacts, because, problem)


def _unresolved(target: str, problem: str) -> Recipient:
    return Recipient(target, "unresolved", target, target, problem=problem)
