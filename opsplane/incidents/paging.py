"""Paging people for incidents: escalation steps, acknowledgements, resolutions, status updates
and reminders, queued in the notification outbox.

`page` is called every control-plane cycle. It is a function of the store and `now` only:
what is owed is computed from each incident's start, severity, acknowledgement and resolution
and the severity's escalation policy (`oncall.escalation.owed`), and every message has an
idempotent key, so calling it again in the same minute, or after `serve` was killed and
restarted, queues nothing twice. Everything lands in the caller's transaction with
`notify.service.enqueue`; the dispatcher delivers it.

Keys (one outbox row per key and channel):

- `escalation:<incident>:<policy>:r<round>:s<step>:<person>:<via>` a page of one person by one
  contact kind; `<person>` is `#<channel>` for a step's `channel:` target. The policy is in the
  key, so a raised severity whose policy differs owes the new policy's steps, not the old one's.
- `incident:<incident>:incident.acknowledged:<at>[:<to>]` and `...incident.resolved...` to
  every channel and address a trigger of the incident reached (delivered, or folded into a
  digest): a page withdrawn when the incident was acknowledged reached nobody, and its
  person is not told of an incident they never heard of. A page whose send was in flight
  at that moment is told once it is delivered, by the next call.
- `incident:<incident>:update:<update>` a status update, to the incident's channels.
- `incident:<incident>:update_due:<due>[:<to>]` the commander's reminder.

Late runs: once an incident is acknowledged or resolved nobody is paged for it, whatever fell
due before (and its pages still waiting in the outbox were withdrawn by the acknowledgement or
resolution itself: `incidents.service`); until then a step that fell due while nothing ran is
queued late, once (each step reaches different people), and only a step superseded by the
same step of a later repeat round is skipped, so a long outage of the control plane does not
replay every round.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from opsplane.alerts.models import Severity
from opsplane.events import service as events
from opsplane.events.tables import Event
from opsplane.incidents import lifecycle, notices
from opsplane.incidents.models import IncidentView, Status, ref
from opsplane.incidents.service import view
from opsplane.incidents.tables import IncidentRow, IncidentUpdateRow
from opsplane.notify import service as notify
from opsplane.notify.models import Notification
from opsplane.notify.models import Status as NoticeStatus
from opsplane.notify.tables import OutboxRow
from opsplane.oncall import escalation
from opsplane.oncall import service as oncall
from opsplane.oncall.models import ContactKind, EscalationPolicy
from opsplane.oncall.rotation import Roster
from opsplane.store import Store

if TYPE_CHECKING:
    from opsplane.config.models import Inventory

log = logging.getLogger(__name__)

ACTOR = "system:oncall"
# a resolved incident is still looked at this long, so its `resolve` goes out even when the
# control plane was down when it was resolved
RESOLVED_LOOKBACK = timedelta(days=1)
# the outbox states of a trigger that reached its receiver: its acknowledge and resolve follow
REACHED = ("delivered", "digested")
# contact kinds a commander's reminder goes by, in order of preference
REMINDER_KINDS = (ContactKind.SLACK, ContactKind.EMAIL)


@dataclass
class PagingReport:
    """What one call did: for the control plane's log and its next wake-up."""

    incidents: int = 0  # incidents looked at (open, or resolved within the lookback)
    queued: int = 0  # new outbox rows
    pages: int = 0  # of which escalation pages of people or channels
    unreachable: int = 0  # new `oncall.unreachable` events
    next_due: datetime | None = None  # the next escalation step or reminder, for a wake-up
    keys: list[str] = field(default_factory=list)  # the new rows' keys, in queue order

    def _due(self, at: datetime | None) -> None:
        if at is not None and (self.next_due is None or at < self.next_due):
            self.next_due = at


@dataclass(frozen=True)
class _Target:
    """Where one message goes: a channel, and on it one person's address or the channel's own."""

    channel: str
    to: str | None = None


def _step_of(key: str) -> str:
    """`escalation:<incident>:<policy>:r<round>:s<step>` of a page's key."""
    parts = key.split(":", 5)
    if not parts[3].startswith("r"):
        # `escalation:<incident>:r<round>:s<step>:...`, queued before keys named their policy:
        # kept as is, and taken for a step of whichever policy is in force (see `_step_done`)
        return ":".join(parts[:4])
    return ":".join(parts[:5])


class _Pager:
    """One call's state: the rows the outbox already holds for these incidents, the roster
    (built once, on the first escalation step), and the report."""

    def __init__(self, session: Session, inventory: Inventory, now: datetime,
                 existing: set[tuple[str, str]], paged: dict[str, list[_Target]],
                 noted: set[str]) -> None:
        self.session = session
        self.inventory = inventory
        self.now = now
        self.existing = existing
        self.paged = paged
        self.noted = noted
        self.report = PagingReport()
        self._roster: Roster | None = None
        # `escalation:<incident>:<policy>:r<round>:s<step>` of every step with a row or an event
        self.steps_done = {_step_of(key) for key in [*(k for _, k in existing), *noted]
                           if key.startswith("escalation:")}

    @property
    def roster(self) -> Roster:
        if self._roster is None:
            self._roster = oncall.get_roster(self.session, settings=self.inventory.oncall)
        return self._roster

    def queue(self, notification: Notification, target: _Target) -> bool:
        """Queue unless the outbox already holds the key on the channel; True when queued."""
        if (target.channel, notification.key) in self.existing:
            return False
        if target.to is not None:
            notification = notification.model_copy(update={"to": target.to})
        result = notify.enqueue(self.session, notification=notification, channels=[target.channel],
                                settings=self.inventory.channels, now=self.now)
        self.existing.add((target.channel, notification.key))
        new = bool(result and result[0].new)
        if new:
            self.report.queued += 1
            self.report.keys.append(notification.key)
        return new

    def unreachable(self, incident: IncidentView, key: str, details: dict[str, Any]) -> None:
        """Record once that `key` reaches no one, instead of failing the cycle."""
        if key in self.noted:
            return
        self.noted.add(key)
        events.record(self.session, kind="oncall.unreachable", actor=ACTOR, target=key,
                      outcome="unreachable", service=incident.service, ts=self.now,
                      details={"incident": ref(incident.id), **details})
        self.report.unreachable += 1


def page(session: Session, *, inventory: Inventory, now: datetime) -> PagingReport:
    """Queue every page, acknowledgement, resolution, status update and reminder due by `now`
    for the open incidents (and those resolved within `RESOLVED_LOOKBACK`). One query when no
    incident is open."""
    rows = session.scalars(select(IncidentRow).where(or_(
        IncidentRow.status != Status.RESOLVED.value,
        IncidentRow.resolved_at >= now - RESOLVED_LOOKBACK)).order_by(IncidentRow.id)).all()
    if not rows:
        return PagingReport()
    incidents = [view(row) for row in rows]
    pager = _prepare(session, inventory, now, incidents)
    updates = _updates(session, incidents)
    for incident in incidents:
        _escalate(pager, incident)
        _follow(pager, incident)
        _post_updates(pager, incident, updates.get(incident.id, ()))
        _remind(pager, incident)
    pager.report.incidents = len(incidents)
    return pager.report


def page_cycle(store: Store, *, inventory: Inventory, now: datetime) -> PagingReport:
    """The control plane's call each cycle: `page` in its own transaction. A failure is logged
    and the next cycle tries again (the keys make that safe); it returns an empty report."""
    try:
        with store.session() as session:
            return page(session, inventory=inventory, now=now)
    except Exception:
        log.exception("paging: incidents could not be paged")
        return PagingReport()


# --- what the outbox already holds ---------------------------------------------------------------


def _prepare(session: Session, inventory: Inventory, now: datetime,
             incidents: Sequence[IncidentView]) -> _Pager:
    """Read, in one query each, the outbox rows of these incidents and the unreachable targets
    already recorded, so a repeated call writes nothing; and which channels and addresses a
    trigger of each incident reached."""
    groups = [notices.group(i.id) for i in incidents]
    groups += [f"{g}:reminders" for g in groups]
    existing: set[tuple[str, str]] = set()
    paged: dict[str, list[_Target]] = {}
    query = select(OutboxRow.id, OutboxRow.channel, OutboxRow.key, OutboxRow.group_key,
                   OutboxRow.status, OutboxRow.state, OutboxRow.payload).where(
        OutboxRow.group_key.in_(groups)).order_by(OutboxRow.id)
    for _, channel, key, group, status, state, payload in session.execute(query):
        existing.add((channel, key))
        if status == NoticeStatus.TRIGGER.value and state in REACHED and group.count(":") == 1:
            target = _Target(channel, (payload or {}).get("to"))
            if target not in paged.setdefault(group, []):
                paged[group].append(target)
    prefixes = [notices.page_prefix(i.id) for i in incidents]
    noted = set(session.scalars(select(Event.target).where(
        Event.kind == "oncall.unreachable", Event.ts >= min(i.started_at for i in incidents),
        or_(*(Event.target.startswith(p) for p in prefixes)))))
    return _Pager(session, inventory, now, existing, paged, noted)


def _updates(session: Session, incidents: Sequence[IncidentView]) -> dict[int, list[IncidentUpdateRow]]:
    found: dict[int, list[IncidentUpdateRow]] = {}
    query = select(IncidentUpdateRow).where(
        IncidentUpdateRow.incident_id.in_([i.id for i in incidents])).order_by(IncidentUpdateRow.id)
    for update in session.scalars(query):
        found.setdefault(update.incident_id, []).append(update)
    return found


# --- escalation ----------------------------------------------------------------------------------


def _policy_name(pager: _Pager, incident: IncidentView) -> str:
    return pager.inventory.oncall.policy_name_for(incident.severity)


def _policy(pager: _Pager, incident: IncidentView) -> EscalationPolicy:
    return pager.inventory.oncall.policy_for(incident.severity)


def _escalate(pager: _Pager, incident: IncidentView) -> None:
    """Queue the owed steps of the incident's policy that no row or event shows as handled; a
    settled incident owes none. The roster is resolved only when some step is new."""
    policy_name = _policy_name(pager, incident)
    policy = _policy(pager, incident)
    settled = lifecycle.settled_at(incident)
    pager.report._due(escalation.next_due(policy, triggered_at=incident.started_at, now=pager.now,
                                          acked_at=settled))
    for planned in escalation.owed(policy, triggered_at=incident.started_at, now=pager.now,
                                   settled_at=settled):
        if _step_done(pager, incident, policy_name, planned):
            continue
        recipients = escalation.resolve_step(policy, planned.step, pager.roster, at=planned.at)
        step = escalation.Notification(planned.at, planned.offset, planned.round, planned.step, recipients)
        for recipient in recipients:
            _page_recipient(pager, incident, policy_name, step, recipient)


def _step_done(pager: _Pager, incident: IncidentView, policy: str, step: escalation.PlannedStep) -> bool:
    """True when the outbox or the event log shows the step was handled: its people are
    paged once, as the roster named them then, and a quiet cycle resolves no roster."""
    at = f"r{step.round}:s{step.step}"
    return (f"escalation:{incident.id}:{policy}:{at}" in pager.steps_done
            or f"escalation:{incident.id}:{at}" in pager.steps_done)


def _page_recipient(pager: _Pager, incident: IncidentView, policy: str, step: escalation.Notification,
                    recipient: escalation.Recipient) -> None:
    base = f"escalation:{incident.id}:{policy}:r{step.round}:s{step.step}"
    oncall_settings = pager.inventory.oncall
    named = pager.inventory.channels.named
    if recipient.kind == "channel":
        key = f"{base}:#{recipient.name}:channel"
        if recipient.name in named:
            _send_page(pager, incident, step, recipient, key, _Target(recipient.name))
        else:
            pager.unreachable(incident, key, {"channel": recipient.name,
                                              "problem": f"no channel {recipient.name!r}"})
        return
    if recipient.problem is not None and not recipient.contacts:
        pager.unreachable(incident, f"{base}:{recipient.name}:-",
                          {"person": recipient.name, "target": recipient.target,
                           "problem": recipient.problem})
        return
    for kind, address in recipient.contacts:
        key = f"{base}:{recipient.name}:{kind}"
        channel = oncall_settings.channel_for(kind, named)
        if channel is None:
            pager.unreachable(incident, key, {"person": recipient.name, "kind": str(kind),
                                              "problem": f"no channel delivers {kind} contacts"})
            continue
        # a PagerDuty user id is PagerDuty's business: the routing key decides whom it pages
        to = None if kind is ContactKind.PAGERDUTY else address
        _send_page(pager, incident, step, recipient, key, _Target(channel, to))


def _send_page(pager: _Pager, incident: IncidentView, step: escalation.Notification,
               recipient: escalation.Recipient, key: str, target: _Target) -> None:
    who = "" if recipient.kind == "channel" else f" for {recipient.display_name} ({recipient.because})"
    late = pager.now - step.at
    notification = Notification(
        key=key[:200], group=notices.group(incident.id), severity=Severity(incident.severity),
        service=incident.service, summary=f"{ref(incident.id)}: {incident.title}",
        details=(f"Escalation step {step.step + 1}" + (f", round {step.round + 1}" if step.round else "")
                 + f"{who}; triggered {incident.started_at.isoformat(timespec='seconds')}"
                 + (f"; sent {int(late.total_seconds())} s late" if late > timedelta(seconds=60) else "")
                 + f". Acknowledge: opsplane incident ack {incident.id}"))
    if pager.queue(notification, target):
        pager.report.pages += 1


# --- acknowledgement and resolution -------------------------------------------------------------


def _follow(pager: _Pager, incident: IncidentView) -> None:
    """`acknowledge` and `resolve` to every channel and address a trigger of the incident
    reached, after its triggers in the same group (so PagerDuty closes the incident it
    opened). Nobody whose page was withdrawn hears of it; a page delivered after the
    acknowledgement (its send was in flight then) is followed in the first call after."""
    targets = pager.paged.get(notices.group(incident.id), [])
    if not targets:
        return
    # once resolved, a resolve says all: an acknowledgement not yet queued is not sent late
    acked = None if incident.resolved_at is not None else incident.acknowledged_at
    changes = [("incident.acknowledged", acked), ("incident.resolved", incident.resolved_at)]
    for kind, at in changes:
        if at is None:
            continue
        base = notices.change(incident, kind=kind, at=at)
        for target in list(targets):
            key = f"{base.key}:{target.to}" if target.to else base.key
            pager.queue(base.model_copy(update={"key": key[:200]}), target)


# --- status updates and reminders ---------------------------------------------------------------


def incident_channels(pager: _Pager, incident: IncidentView) -> list[str]:
    """The channels of the `channel:` targets of the incident's escalation policy that exist:
    where its status updates are posted."""
    found: list[str] = []
    for step in _policy(pager, incident).steps:
        for target in step.notify:
            kind, _, name = target.partition(":")
            if kind == "channel" and name in pager.inventory.channels.named and name not in found:
                found.append(name)
    return found


def _post_updates(pager: _Pager, incident: IncidentView, updates: Iterable[IncidentUpdateRow]) -> None:
    """Each status update once to the incident's channels; the resolving one is the `resolve`."""
    channels = incident_channels(pager, incident)
    for update in updates:
        if update.status == Status.RESOLVED.value:
            continue
        words = f"{ref(incident.id)} {update.status}: {update.summary}"
        if update.actions:
            words += f" Next: {update.actions}"
        notification = Notification(
            key=f"{notices.group(incident.id)}:update:{update.id}", group=notices.group(incident.id),
            severity=Severity(incident.severity), service=incident.service, summary=words,
            details=("Public update. " if update.public else "") + f"By {update.author}"
            + (f"; next update by {update.next_update_at.isoformat(timespec='minutes')}"
               if update.next_update_at else ""))
        for channel in channels:
            pager.queue(notification, _Target(channel))


def _remind(pager: _Pager, incident: IncidentView) -> None:
    """The commander's reminder once per due time, to the commander's Slack or e-mail when a
    channel delivers it, else to the incident's channels."""
    due = incident.next_update_at
    if not incident.status.is_open or due is None:
        return
    if pager.now < due:
        pager.report._due(due)
        return
    reminder = notices.reminder(incident)
    targets = _commander_targets(pager, incident) or [
        _Target(c) for c in incident_channels(pager, incident)]
    for target in targets:
        key = f"{reminder.key}:{target.to}" if target.to else reminder.key
        pager.queue(reminder.model_copy(update={"key": key[:200]}), target)


def _commander_targets(pager: _Pager, incident: IncidentView) -> list[_Target]:
    settings = pager.inventory.oncall
    person = settings.people.get(incident.commander or "")
    if person is None:
        return []
    for kind in REMINDER_KINDS:
        channel = settings.channel_for(kind, pager.inventory.channels.named)
        if kind in person.contact and channel is not None:
            return [_Target(channel, person.contact[kind])]
    return []
