"""Every domain's tables, gathered so that migrations see one metadata."""

from opsplane.alerts.evaluations import EvaluationRow
from opsplane.alerts.tables import AlertRow, NotificationRow, SilenceRow
from opsplane.auth.tables import ApiToken, DashboardSession
from opsplane.backup.tables import BackupCopyRow, BackupRow, RestoreRow
from opsplane.capacity.tables import CapacityHourRow, CapacitySampleRow
from opsplane.checklists.tables import ChecklistRunRow
from opsplane.dependencies.tables import DependencyFindingRow
from opsplane.deploy.tables import DeployRow
from opsplane.events.tables import Event, EventChain
from opsplane.gameday.tables import GamedayRow
from opsplane.health.tables import CheckState
from opsplane.incidents.tables import ActionItemRow, IncidentAlertRow, IncidentRow, IncidentUpdateRow
from opsplane.notify.tables import OutboxRow
from opsplane.reports.tables import ReportRow
from opsplane.runbooks.tables import RunbookRunRow, RunbookStepRow
from opsplane.slo.tables import SloHourRow, SloMinuteRow
from opsplane.store.base import Base
from opsplane.store.claims import WorkClaim

metadata = Base.metadata

__all__ = [
    "ActionItemRow", "AlertRow", "ApiToken", "BackupCopyRow", "BackupRow", "CapacityHourRow",
    "CapacitySampleRow", "CheckState", "ChecklistRunRow", "DashboardSession", "DependencyFindingRow",
    "DeployRow", "EvaluationRow", "Event", "EventChain", "GamedayRow", "IncidentAlertRow", "IncidentRow",
    "IncidentUpdateRow", "NotificationRow", "OutboxRow", "ReportRow", "RestoreRow", "RunbookRunRow",
    "RunbookStepRow", "SilenceRow", "SloHourRow", "SloMinuteRow", "WorkClaim", "metadata",
]
