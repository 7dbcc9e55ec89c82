"""Incidents from the alerting cycle: firing alerts open or join incidents, and overdue status
updates become reminders for the commander.

`follow_alerts` is called by `Alerting.run_once` after each cycle has stored its alerts, in
its own transaction: an alert that fires is in the store before any incident names it. A
failure here is logged and leaves the cycle to notify as usual: paging must not wait on the
incident record, and the next cycle tries the same firings again.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Iterable
from datetime import datetime

from opsplane.alerts.state import Alert, AlertState
from opsplane.incidents import lifecycle, service
from opsplane.incidents.models import AlertSignal, IncidentsSettings
from opsplane.incidents.tables import IncidentRow
from opsplane.store import Store
from opsplane.store.fit import fit_key, fit_text

log = logging.getLogger(__name__)

UNNAMED_SERVICE = "platform"  # an alert without a `service` label is about the platform


def signals(alerts: Iterable[Alert], *, muted: Container[str],
            settings: IncidentsSettings) -> list[AlertSignal]:
    """The firing, unmuted alerts of the severities that open incidents, as signals."""
    found = []
    for alert in alerts:
        severity = alert.labels.get("severity", "")
        if alert.state is not AlertState.FIRING or alert.fingerprint in muted:
            continue
        if severity not in settings.open_for:
            continue
        # as the store keeps them: the group is how an open incident is found again
        where = fit_text(IncidentRow.service, alert.labels.get("service") or UNNAMED_SERVICE)
        found.append(AlertSignal(
            fingerprint=alert.fingerprint, name=alert.name, severity=severity, service=where,
            group=fit_key(IncidentRow.group_key, lifecycle.group_key(where, alert.labels, settings.group_by)),
            summary=alert.annotations.get("summary", ""), active_at=alert.active_at,
        ))
    return found


def follow_alerts(store: Store, alerts: Iterable[Alert], *, muted: Container[str],
                  now: datetime, settings: IncidentsSettings) -> list[IncidentRow]:
    """Open or join incidents for the cycle's firing alerts, then record reminders for status
    updates that are overdue, in one transaction. Returns the incidents opened or joined; none
    when that failed (logged)."""
    try:
        with store.session() as session:
            touched = service.open_or_join(
                session, alerts=signals(alerts, muted=muted, settings=settings), now=now,
                settings=settings)
            service.remind(session, now=now)
    except Exception:
        log.exception("incidents: firing alerts could not be turned into incidents")
        return []
    return touched
