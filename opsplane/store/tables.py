"""Every domain's tables, gathered so that migrations see one metadata."""

from opsplane.auth.tables import ApiToken
from opsplane.events.tables import Event
from opsplane.health.tables import CheckState
from opsplane.store.base import Base

metadata = Base.metadata

__all__ = ["ApiToken", "CheckState", "Event", "metadata"]
