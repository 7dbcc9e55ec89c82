"""Incidents over a session: open, acknowledge, update, resolve, notes, action items, and
firing alerts turned into incidents. Each change is also an `incident.*` event in the log,
with its actor and outcome, in the same transaction.

The decisions (which moves are allowed, when an update is due, which incident an alert
joins) are made by `lifecycle`; this module reads and writes rows around them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from opsplane.errors import UsageError
from opsplane.events import service as events
from opsplane.events.tables import Event
from opsplane.incidents import lifecycle, notices, timeline
from opsplane.incidents.models import (
    SEVERITIES,
    ActionItem,
    AlertSignal,
    IncidentsSettings,
    IncidentView,
    Status,
    TimelineEntry,
    ref,
)
from opsplane.incidents.postmortem import PostmortemFacts
from opsplane.incidents.tables import ActionItemRow, IncidentAlertRow, IncidentRow, IncidentUpdateRow
from opsplane.notify import service as notify
from opsplane.store.fit import fit, fit_key, fit_text

ACTOR = "system:incidents"
SUCCESS = "success"


class NoSuchIncident(UsageError):
    """No incident has that id."""


# --- reading -------------------------------------------------------------------------------------


def get(session: Session, *, incident_id: int) -> IncidentRow | None:
    return session.get(IncidentRow, incident_id)


def get_or_raise(session: Session, *, incident_id: int) -> IncidentRow:
    row = get(session, incident_id=incident_id)
    if row is None:
        raise NoSuchIncident(f"no incident {ref(incident_id)}; `opsplane incident list` shows them")
    return row


def get_all(
    session: Session,
    *,
    open_only: bool = False,
    service: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> Sequence[IncidentRow]:
    """Incidents newest first; `since` keeps those started at or after it."""
    query = select(IncidentRow)
    if open_only:
        query = query.where(IncidentRow.status != Status.RESOLVED.value)
    if service is not None:
        query = query.where(IncidentRow.service == service)
    if since is not None:
        query = query.where(IncidentRow.started_at >= since)
    return session.scalars(query.order_by(IncidentRow.id.desc()).limit(limit)).all()


def get_updates(session: Session, *, incident_id: int) -> Sequence[IncidentUpdateRow]:
    """The incident's status updates, oldest first."""
    query = (select(IncidentUpdateRow).where(IncidentUpdateRow.incident_id == incident_id)
             .order_by(IncidentUpdateRow.at, IncidentUpdateRow.id))
    return session.scalars(query).all()


def get_alerts(session: Session, *, incident_id: int) -> Sequence[IncidentAlertRow]:
    query = (select(IncidentAlertRow).where(IncidentAlertRow.incident_id == incident_id)
             .order_by(IncidentAlertRow.joined_at, IncidentAlertRow.id))
    return session.scalars(query).all()


def get_action_items(session: Session, *, incident_id: int | None = None,
                     open_only: bool = False) -> list[ActionItem]:
    query = select(ActionItemRow)
    if incident_id is not None:
        query = query.where(ActionItemRow.incident_id == incident_id)
    if open_only:
        query = query.where(ActionItemRow.done_at.is_(None))
    return [_item(row) for row in session.scalars(query.order_by(ActionItemRow.id))]


def get_timeline(session: Session, *, incident_id: int, now: datetime,
                 limit: int = 2000) -> list[TimelineEntry]:
    """The incident's timeline from the event log: its service's events and those naming it,
    from a while before it started until a little after it was resolved."""
    row = get_or_raise(session, incident_id=incident_id)
    begin, end = timeline.window(row.started_at, row.detected_at, row.resolved_at, now)
    query = (select(Event).where(Event.ts >= begin, Event.ts <= end,
                                 or_(Event.service == row.service, Event.target == ref(row.id),
                                     # work done for the incident (a runbook run): INC-7/runbook-run:3
                                     Event.target.startswith(f"{ref(row.id)}/", autoescape=True)))
             .order_by(Event.ts, Event.id).limit(limit))
    return timeline.assemble(session.scalars(query))


# --- changes by people ---------------------------------------------------------------------------


def create(
    session: Session,
    *,
    title: str,
    service: str,
    severity: str,
    actor: str,
    now: datetime,
    settings: IncidentsSettings,
    commander: str | None = None,
    detected_at: datetime | None = None,
    group: str | None = None,
    public_title: str | None = None,
) -> IncidentRow:
    """Open an incident at `now`. Detection starts at the first failing check or alert of the
    service within the settings' lookback, or at `detected_at` (an alert's start) if earlier.
    `public_title` is what the public status page calls it (default: words made from its
    severity and the public components it touches)."""
    if severity not in SEVERITIES:
        raise UsageError(f"unknown severity {severity!r}; use one of {', '.join(SEVERITIES)}")
    if not title.strip():
        raise UsageError("an incident needs a title")
    if not service.strip():
        raise UsageError("an incident needs a service")
    service = fit_text(IncidentRow.service, service)  # as the event log keeps it
    logged = first_signal(session, service=service, before=now,
                          lookback=timedelta(seconds=settings.detection_lookback))
    known = [t for t in (detected_at, logged) if t is not None]
    detected_at = min(known) if known else None
    key = group if group is not None else fit_key(IncidentRow.group_key,
                                                  lifecycle.group_key(service, {}, settings.group_by))
    row = IncidentRow(**fit(IncidentRow, {
        "title": title.strip(), "public_title": _public_title(public_title), "service": service,
        "severity": severity, "status": Status.TRIGGERED.value, "group_key": key, "commander": commander,
        "participants": [], "opened_by": actor, "started_at": now, "detected_at": detected_at,
        "next_update_at": lifecycle.next_update_due(severity, settings, after=now), "root_cause": "",
    }))
    session.add(row)
    session.flush()
    _record(session, row, "incident.opened", actor, now,
            {"title": row.title, "severity": severity, "commander": commander,
             "detected_at": detected_at.isoformat() if detected_at else None,
             **({"public_title": row.public_title} if row.public_title else {})})
    return row


def _public_title(title: str | None) -> str | None:
    """A public title as given, trimmed; None when there is none (blank counts as none)."""
    if title is None or not title.strip():
        return None
    if len(title.strip()) > 300:
        raise UsageError("a public title is at most 300 characters")
    return title.strip()


def acknowledge(session: Session, *, incident_id: int, actor: str, now: datetime,
                commander: str | None = None) -> IncidentRow:
    row = get_or_raise(session, incident_id=incident_id)
    after = lifecycle.acknowledge(view(row), now=now, actor=actor, commander=commander)
    _apply(row, after, actor)
    _record(session, row, "incident.acknowledged", actor, now,
            {"commander": row.commander,
             "seconds_to_acknowledge": (now - row.started_at).total_seconds()})
    _withdraw_pages(session, row, "acknowledged", actor, now)
    return row


def post_update(
    session: Session,
    *,
    incident_id: int,
    status: Status,
    summary: str,
    actor: str,
    now: datetime,
    settings: IncidentsSettings,
    actions: str = "",
    next_update_at: datetime | None = None,
    public: bool = False,
    root_cause: str | None = None,
    public_title: str | None = None,
) -> IncidentUpdateRow:
    """A status update on the manual's template; it sets the incident's status and when the
    next update is due (the time given, else the severity's cadence from now), and the public
    title when one is given."""
    if not summary.strip():
        raise UsageError("a status update needs a summary of the issue and its impact")
    if next_update_at is not None and next_update_at <= now:
        raise UsageError("the next update must be in the future")
    row = get_or_raise(session, incident_id=incident_id)
    was_acknowledged = row.acknowledged_at is not None
    after = lifecycle.move(view(row), to=status, now=now, actor=actor)
    if after.status.is_open:
        due = lifecycle.next_update_due(row.severity, settings, after=now, requested=next_update_at)
        after = replace(after, next_update_at=due)
    _apply(row, after, actor)
    if root_cause is not None:
        row.root_cause = root_cause
    titled = _public_title(public_title)
    if titled is not None:
        row.public_title = titled
    update = IncidentUpdateRow(incident_id=row.id, at=now, status=status.value, summary=summary.strip(),
                               actions=actions.strip(), next_update_at=row.next_update_at,
                               public=public, author=actor)
    session.add(update)
    session.flush()
    if not was_acknowledged:
        _record(session, row, "incident.acknowledged", actor, now,
                {"commander": row.commander,
                 "seconds_to_acknowledge": (now - row.started_at).total_seconds()})
    kind = "incident.resolved" if status is Status.RESOLVED else "incident.updated"
    _record(session, row, kind, actor, now,
            {"update": update.id, "status": status.value, "summary": update.summary,
             "actions": update.actions, "public": public,
             "next_update_at": row.next_update_at.isoformat() if row.next_update_at else None,
             **({"public_title": titled} if titled else {})})
    if status is Status.RESOLVED:
        _withdraw_pages(session, row, "resolved", actor, now)
    elif not was_acknowledged:
        _withdraw_pages(session, row, "acknowledged", actor, now)
    return update


def resolve(session: Session, *, incident_id: int, actor: str, now: datetime,
            settings: IncidentsSettings, summary: str = "", public: bool = False,
            root_cause: str | None = None) -> IncidentUpdateRow:
    """Resolve the incident with a final status update."""
    return post_update(session, incident_id=incident_id, status=Status.RESOLVED,
                       summary=summary or "Resolved.", actor=actor, now=now, settings=settings,
                       public=public, root_cause=root_cause)


def add_note(session: Session, *, incident_id: int, text: str, actor: str, now: datetime) -> Event:
    """A note for the timeline (what was tried, what was seen)."""
    if not text.strip():
        raise UsageError("a note needs some text")
    row = get_or_raise(session, incident_id=incident_id)
    _join(row, actor)
    return _record(session, row, "incident.note", actor, now, {"note": text.strip()})


def add_action_item(session: Session, *, incident_id: int, title: str, owner: str,
                    due: date | None, actor: str, now: datetime) -> ActionItem:
    """An action item of the post-mortem, tracked until it is done."""
    if not title.strip() or not owner.strip():
        raise UsageError("an action item needs a title and an owner")
    row = get_or_raise(session, incident_id=incident_id)
    item = ActionItemRow(incident_id=row.id, title=title.strip(), owner=owner.strip(), due=due,
                         created_at=now)
    session.add(item)
    session.flush()
    _record(session, row, "incident.action_added", actor, now,
            {"item": item.id, "title": item.title, "owner": item.owner,
             "due": due.isoformat() if due else None})
    return _item(item)


def complete_action_item(session: Session, *, item_id: int, actor: str, now: datetime) -> ActionItem:
    item = session.get(ActionItemRow, item_id)
    if item is None:
        raise UsageError(f"no action item {item_id}; `opsplane incident actions` lists them")
    if item.done_at is not None:
        raise UsageError(f"action item {item_id} was already done at {item.done_at.isoformat()}")
    item.done_at = now
    row = get_or_raise(session, incident_id=item.incident_id)
    _record(session, row, "incident.action_done", actor, now, {"item": item.id, "title": item.title})
    return _item(item)


# --- changes by the control plane ---------------------------------------------------------------


def open_or_join(session: Session, *, alerts: Sequence[AlertSignal], now: datetime,
                 settings: IncidentsSettings) -> list[IncidentRow]:
    """Firing alerts of the configured severities open an incident, or join the open one of
    the same service and group. A firing already in an incident is left alone, so calling
    this every cycle is harmless. Returns the incidents opened or joined."""
    wanted = [a for a in alerts if a.severity in settings.open_for]
    if not wanted:
        return []
    known = {(fingerprint, active_at) for fingerprint, active_at in session.execute(
        select(IncidentAlertRow.fingerprint, IncidentAlertRow.active_at)
        .where(IncidentAlertRow.fingerprint.in_({a.fingerprint for a in wanted})))}
    fresh = [a for a in wanted if (a.fingerprint, a.active_at) not in known]
    if not fresh:
        return []
    open_rows = {r.id: r for r in session.scalars(
        select(IncidentRow).where(IncidentRow.status != Status.RESOLVED.value,
                                  IncidentRow.group_key.in_({a.group for a in fresh})))}
    decided = lifecycle.plan(fresh, [view(r) for r in open_rows.values()], settings)
    touched: list[IncidentRow] = []
    for key, signals in decided.open.items():
        first = min(signals, key=lambda a: a.active_at)
        row = create(session, title=first.summary or f"{first.name} on {first.service}",
                     service=first.service, severity=lifecycle.most_severe(signals), actor=ACTOR,
                     now=now, settings=settings, detected_at=first.active_at, group=key)
        _attach(session, row, signals, now)
        touched.append(row)
    for incident_id, signals in decided.join.items():
        row = open_rows[incident_id]
        _attach(session, row, signals, now)
        if (severity := decided.raise_to.get(incident_id)) is not None:
            _record(session, row, "incident.severity_raised", ACTOR, now,
                    {"from": row.severity, "to": severity, "by": signals[0].name})
            row.severity = severity
        touched.append(row)
    return touched


def remind(session: Session, *, now: datetime) -> list[IncidentRow]:
    """Record `incident.update_due` for each open incident whose status update is overdue, once
    per due time, naming the commander to remind. Returns the incidents reminded."""
    rows = session.scalars(select(IncidentRow).where(
        IncidentRow.status != Status.RESOLVED.value, IncidentRow.next_update_at <= now)).all()
    due = {i.id for i in lifecycle.due_reminders([view(r) for r in rows], now)}
    reminded = []
    for row in rows:
        if row.id not in due:
            continue
        _record(session, row, "incident.update_due", ACTOR, now,
                {"commander": row.commander, "due_at": row.next_update_at.isoformat()
                 if row.next_update_at else None})
        row.reminded_for = row.next_update_at
        reminded.append(row)
    return reminded


def first_signal(session: Session, *, service: str, before: datetime,
                 lookback: timedelta) -> datetime | None:
    """The earliest alert or failing check of `service` in the lookback before `before`."""
    query = (select(Event.ts).where(
        Event.service == service, Event.ts >= before - lookback, Event.ts <= before,
        or_(Event.kind.in_(("alert.pending", "alert.firing")),
            (Event.kind == "check.state_changed") & Event.outcome.in_(("CRITICAL", "WARNING"))))
        .order_by(Event.ts).limit(1))
    return session.scalars(query).first()


# --- shapes --------------------------------------------------------------------------------------


def view(row: IncidentRow) -> IncidentView:
    return IncidentView(
        id=row.id, title=row.title, service=row.service, severity=row.severity,
        status=Status(row.status), started_at=row.started_at, detected_at=row.detected_at,
        acknowledged_at=row.acknowledged_at, resolved_at=row.resolved_at,
        next_update_at=row.next_update_at, reminded_for=row.reminded_for, commander=row.commander,
        group_key=row.group_key,
    )


def incident_dict(row: IncidentRow, settings: IncidentsSettings) -> dict[str, Any]:
    """An incident as the CLI's --json and the API show it, with its severity's targets."""
    policy = settings.policy(row.severity)

    def at(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    postmortem_due = (row.resolved_at + timedelta(seconds=policy.postmortem_within)
                      if row.resolved_at and policy.postmortem_within else None)
    return {
        "id": row.id, "ref": ref(row.id), "title": row.title, "public_title": row.public_title,
        "service": row.service,
        "severity": row.severity, "status": row.status, "commander": row.commander,
        "participants": list(row.participants), "opened_by": row.opened_by,
        "started_at": at(row.started_at), "detected_at": at(row.detected_at),
        "acknowledged_at": at(row.acknowledged_at), "resolved_at": at(row.resolved_at),
        "next_update_at": at(row.next_update_at), "root_cause": row.root_cause,
        "targets": {"response_time": policy.response_time,
                    "resolution_target": policy.resolution_target,
                    "update_cadence": policy.update_cadence,
                    "postmortem_due": at(postmortem_due)},
    }


def update_dict(row: IncidentUpdateRow) -> dict[str, Any]:
    return {"id": row.id, "at": row.at.isoformat(), "status": row.status, "summary": row.summary,
            "actions": row.actions, "public": row.public, "author": row.author,
            "next_update_at": row.next_update_at.isoformat() if row.next_update_at else None}


# --- internals -----------------------------------------------------------------------------------


def _attach(session: Session, row: IncidentRow, signals: Sequence[AlertSignal], now: datetime) -> None:
    for alert in signals:
        session.add(IncidentAlertRow(**fit(IncidentAlertRow, {
            "incident_id": row.id, "fingerprint": alert.fingerprint, "active_at": alert.active_at,
            "alertname": alert.name, "severity": alert.severity, "joined_at": now})))
        _record(session, row, "incident.alert_joined", ACTOR, now,
                {"alert": alert.name, "fingerprint": alert.fingerprint, "severity": alert.severity,
                 "active_at": alert.active_at.isoformat()})
    session.flush()


def _apply(row: IncidentRow, after: IncidentView, actor: str) -> None:
    row.status = after.status.value
    row.acknowledged_at = after.acknowledged_at
    row.resolved_at = after.resolved_at
    row.next_update_at = after.next_update_at
    row.commander = after.commander
    _join(row, actor)


def _join(row: IncidentRow, actor: str) -> None:
    name = lifecycle.person(actor)
    if not actor.startswith("system:") and name not in row.participants:
        row.participants = [*row.participants, name]


def _withdraw_pages(session: Session, row: IncidentRow, what: str, actor: str, now: datetime) -> None:
    """Someone took the incident in hand: its escalation pages not sent yet are withdrawn, in
    this transaction, so nobody is paged for it any more (a page being sent at this moment
    goes out, and its acknowledge or resolve follows it)."""
    notify.withdraw(session, group=notices.group(row.id), prefix=notices.page_prefix(row.id),
                    reason=f"{ref(row.id)} {what} by {lifecycle.person(actor)}", now=now)


def _record(session: Session, row: IncidentRow, kind: str, actor: str, now: datetime,
            details: dict[str, Any]) -> Event:
    return events.record(session, kind=kind, actor=actor, target=ref(row.id), service=row.service,
                         outcome=SUCCESS, ts=now,
                         details={"incident": row.id, "severity": row.severity, "status": row.status,
                                  **details})


def _item(row: ActionItemRow) -> ActionItem:
    return ActionItem(id=row.id, incident_id=row.incident_id, title=row.title, owner=row.owner,
                      due=row.due, created_at=row.created_at, done_at=row.done_at)


# --- what show, the API and the post-mortem read ------------------------------------------------


def detail(session: Session, *, incident_id: int, settings: IncidentsSettings,
           now: datetime) -> dict[str, Any]:
    """An incident with its status updates, alerts, action items and timeline."""
    row = get_or_raise(session, incident_id=incident_id)
    return {
        **incident_dict(row, settings),
        "updates": [update_dict(u) for u in get_updates(session, incident_id=row.id)],
        "alerts": [a.as_dict() for a in get_alerts(session, incident_id=row.id)],
        "action_items": [a.as_dict() for a in get_action_items(session, incident_id=row.id)],
        "timeline": [e.as_dict() for e in get_timeline(session, incident_id=row.id, now=now)],
    }


def postmortem_facts(session: Session, *, incident_id: int, settings: IncidentsSettings,
                     now: datetime) -> PostmortemFacts:
    row = get_or_raise(session, incident_id=incident_id)
    return PostmortemFacts(
        incident=view(row), policy=settings.policy(row.severity), participants=list(row.participants),
        alerts=[a.as_dict() for a in get_alerts(session, incident_id=row.id)],
        updates=[update_dict(u) for u in get_updates(session, incident_id=row.id)],
        timeline=get_timeline(session, incident_id=row.id, now=now),
        action_items=get_action_items(session, incident_id=row.id),
        root_cause=row.root_cause, now=now,
    )
