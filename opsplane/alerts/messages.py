"""A group notification of alerting as the outbox's message (docs/notifications.md).

A receiver with `channels` queues one message per notification to each of them. The
message's key is made from what the notification says (its alerts, their firing and
resolution times) and from when this group was last notified: a cycle that queues it and
dies before the notification log is written queues the very same key again after the
restart, and the outbox keeps it once; a repeat after `repeat_interval` follows a newer
notification and so has a new key. The group is the receiver's alert group, so PagerDuty
keeps one incident per group and a resolve closes it.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

from opsplane.alerts.models import Severity
from opsplane.alerts.routing import Notification, SentNotification
from opsplane.alerts.state import RESOLVED_REASON, Alert, runbook_of
from opsplane.notify.models import AlertValue, Status
from opsplane.notify.models import Notification as Message
from opsplane.units import format_value

SOURCE = "opsplane alerting"
_SEVERITIES = [s.value for s in Severity]
_LISTED = 20  # alerts spelled out in a message's details; the rest are counted


def outbox_message(notification: Notification, *, previous: SentNotification | None) -> Message:
    """The message for `notification`; `previous` is the notification log's last entry for
    its receiver and group (None when the group was never notified)."""
    alerts = notification.firing or notification.resolved
    names = sorted({a.name for a in alerts})
    summary = (_summary(alerts[0]) if len(alerts) == 1
               else f"{len(alerts)} alerts: {', '.join(names)}")
    runbooks = [shown for a in alerts if (shown := runbook_of(a.annotations))]
    return Message(
        key=_key(notification, previous),
        group=f"alert:{notification.receiver}:{notification.group_id}",
        status=Status.TRIGGER if notification.firing else Status.RESOLVE,
        severity=Severity(_highest(alerts)),
        summary=summary,
        service=_common(alerts, "service"),
        details=_details(notification),
        runbook=runbooks[0] if runbooks else None,
        source=SOURCE,
        values=tuple(_value(a) for a in alerts[:_LISTED]),
    )


def _key(notification: Notification, previous: SentNotification | None) -> str:
    said = [f"F{a.fingerprint}@{_when(a.fired_at)}" for a in notification.firing]
    said += [f"R{a.fingerprint}@{_when(a.resolved_at)}" for a in notification.resolved]
    said.append(f"after {_when(previous.sent_at) if previous else '-'}")
    digest = hashlib.sha256("\n".join(sorted(said)).encode()).hexdigest()[:32]
    return f"alert:{notification.receiver}:{notification.group_id}:{digest}"


def _when(at: datetime | None) -> str:
    return at.isoformat() if at else "-"


def _summary(alert: Alert) -> str:
    if alert.annotations.get("summary"):
        return alert.annotations["summary"]
    if math.isnan(alert.value):
        return alert.name
    return f"{alert.name} at {format_value(alert.value, alert.unit)}"


def _value(alert: Alert) -> AlertValue:
    exact = alert.value if math.isfinite(alert.value) else None  # JSON has no NaN or infinity
    return AlertValue(alert=alert.name, service=alert.labels.get("service"), value=exact, unit=alert.unit,
                      text=format_value(alert.value, alert.unit))


def _highest(alerts: tuple[Alert, ...]) -> str:
    """The most severe `severity` label (P0 first); P2 for alerts without a known one."""
    known = [a.labels.get("severity", "") for a in alerts]
    return min((s for s in known if s in _SEVERITIES), key=_SEVERITIES.index, default="P2")


def _common(alerts: tuple[Alert, ...], label: str) -> str | None:
    values = {a.labels.get(label) for a in alerts}
    value = values.pop() if len(values) == 1 else None
    return value or None


def _details(notification: Notification) -> str:
    lines = [_line("FIRING", a) for a in notification.firing[:_LISTED]]
    lines += [_line("RESOLVED", a) for a in notification.resolved[:_LISTED]]
    hidden = len(notification.firing) + len(notification.resolved) - len(lines)
    if hidden > 0:
        lines.append(f"and {hidden} more")
    if notification.explains:
        muted = sorted({f"{i.target.name} on {i.target.labels.get('service', '?')}"
                        for i in notification.explains})
        lines.append("Explains, muted: " + "; ".join(muted))
    return "\n".join(lines)


def _line(state: str, alert: Alert) -> str:
    """'FIRING HighErrorRate (orders) at 5.3%: orders answers 5.3% of requests with 5xx'; a
    resolution that is not the series' says why ('... (rule X was removed from the configuration)')."""
    where = alert.labels.get("service")
    value = "" if math.isnan(alert.value) else f"at {format_value(alert.value, alert.unit)}"
    head = " ".join(part for part in (state, alert.name, f"({where})" if where else "", value) if part)
    text = alert.annotations.get("summary", "")
    reason = alert.annotations.get(RESOLVED_REASON) if state == "RESOLVED" else None
    if reason:
        text = f"{text} ({reason})" if text else reason
    return f"{head}: {text}" if text else head
