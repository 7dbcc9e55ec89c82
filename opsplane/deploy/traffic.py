"""The share of requests each deploy that is not finished gives its new release: what the
runtime keeps when it rebuilds a proxy's routes (`opsplane up`, `scale`) in the middle of a
deploy (`drivers.traffic.routes`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsplane.drivers.traffic.routes import Share


def active_shares(session: Session) -> dict[str, Share]:
    """The share each deploy that is not finished gives its new release now."""
    from opsplane.deploy.tables import DeployRow

    rows = session.scalars(select(DeployRow).where(DeployRow.active_service.is_not(None)))
    return {row.service: (row.to_version, row.percent, ()) for row in rows}
