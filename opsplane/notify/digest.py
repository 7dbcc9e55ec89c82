"""The P3 digest: many low-severity notifications of a channel as one message (MON-5)."""

from __future__ import annotations

from datetime import datetime

from opsplane.alerts.models import Severity
from opsplane.notify.models import Notification, Status

MAX_LINES = 50


def build_digest(channel: str, items: list[Notification], *, first_id: int, last_id: int,
                 since: datetime) -> Notification:
    """One notification listing `items` in the order they were queued.

    Its key names the rows it covers, so two dispatchers building the same digest build
    one row; its group is the channel's digest group, so digests go out in order.
    """
    services = sorted({item.service for item in items if item.service})
    count = len(items)
    summary = f"{count} low-severity notification{'s' if count != 1 else ''}"
    if services:
        summary += " for " + ", ".join(services[:5]) + (" and more" if len(services) > 5 else "")
    lines = [f"Held since {since.strftime('%Y-%m-%d %H:%M UTC')}:"]
    for item in items[:MAX_LINES]:
        where = f"{item.service}: " if item.service else ""
        state = "" if item.status is Status.TRIGGER else f" ({item.status.value})"
        lines.append(f"- {where}{item.summary}{state}")
    if count > MAX_LINES:
        lines.append(f"- and {count - MAX_LINES} more (opsplane notify outbox --all)")
    return Notification(
        key=f"digest:{channel}:{first_id}-{last_id}",
        group=f"digest:{channel}",
        status=Status.TRIGGER,
        severity=Severity.P3,
        summary=summary,
        details="\n".join(lines),
        digest_of=tuple(item.key for item in items),
    )
