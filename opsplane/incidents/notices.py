"""What an incident's changes say to notification channels, as `notify` Notifications.

The incident domain does not choose channels or people (on-call escalation and the channels'
settings do); it says what a change means: its key (so a change is sent once), its group (so
one incident's messages keep their order and PagerDuty sees one incident), its status and its
words.
"""

from __future__ import annotations

from datetime import datetime

from opsplane.alerts.models import Severity
from opsplane.incidents.models import IncidentView, ref
from opsplane.notify.models import Notification, Status

_STATUS = {"incident.opened": Status.TRIGGER, "incident.acknowledged": Status.ACKNOWLEDGE,
           "incident.resolved": Status.RESOLVE}


def group(incident_id: int) -> str:
    return f"incident:{incident_id}"


def page_prefix(incident_id: int) -> str:
    """What the keys of the incident's escalation pages start with (`incidents.paging`)."""
    return f"escalation:{incident_id}:"


def change(incident: IncidentView, *, kind: str, at: datetime, summary: str = "") -> Notification:
    """The notification of one `incident.*` change (opened, acknowledged, updated, resolved,
    severity_raised)."""
    words = {
        "incident.opened": f"{ref(incident.id)} opened: {incident.title}",
        "incident.acknowledged": f"{ref(incident.id)} acknowledged by {incident.commander or 'someone'}",
        "incident.resolved": f"{ref(incident.id)} resolved: {incident.title}",
        "incident.severity_raised": f"{ref(incident.id)} is now {incident.severity}: {incident.title}",
    }
    text = words.get(kind) or f"{ref(incident.id)} {incident.status.value}: {summary or incident.title}"
    return Notification(key=f"{group(incident.id)}:{kind}:{at.isoformat()}", group=group(incident.id),
                        status=_STATUS.get(kind, Status.TRIGGER), severity=Severity(incident.severity),
                        summary=text, service=incident.service, details=summary)


def reminder(incident: IncidentView) -> Notification:
    """The reminder to the commander that a status update is due (once per due time)."""
    due = incident.next_update_at.isoformat(timespec="minutes") if incident.next_update_at else "now"
    who = incident.commander or "the commander"
    return Notification(
        key=f"{group(incident.id)}:update_due:{due}", group=f"{group(incident.id)}:reminders",
        severity=Severity(incident.severity), service=incident.service,
        summary=f"{ref(incident.id)}: a status update is due ({due}); {who}, please post one",
        details=f"opsplane incident update {incident.id} --status ... --summary ...")
