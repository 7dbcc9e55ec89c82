"""Backup routes: viewers read the catalog, each policy's state against its RPO and 3-2-1, and
the restores, verifications and drills with their reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from opsplane.api.errors import declare
from opsplane.api.params import ROW_ID_MAX
from opsplane.api.store import in_session
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["backups"])
T = TypeVar("T")
BackupId = Path(ge=1, le=ROW_ID_MAX, description="The backup's number.")
READ_REFUSALS = declare(404, meaning={404: "No such backup, or no such backup policy."})
CHANGE_REFUSALS = declare(404, 409, meaning={
    404: "No such backup policy.", 409: "Refused: the policy's engine cannot do what was asked."})


@router.get("/backups", responses=READ_REFUSALS)
async def list_backups(
    request: Request, policy: str | None = Query(None, description="Only this policy's backups."),
    limit: int = Query(50, ge=1, le=1000), _: Principal = Depends(require(Role.VIEWER)),
) -> list[dict[str, Any]]:
    """The catalog, newest first: each backup's state, size, checksum and copies per repository."""
    from opsplane.backup import service

    def work(session: Any) -> list[dict[str, Any]]:
        if policy is not None:
            _known(request, policy)
        rows = service.get_all(session, policy=policy, limit=limit)
        held = service.copies(session, [row.id for row in rows])
        return [service.as_dict(row, held[row.id]) for row in rows]

    return await _run(request, work)


@router.get("/backups/status")
async def backup_status(request: Request,
                        _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """Each policy: its newest good copy per repository against the RPO, 3-2-1, failures in a
    row, the last verification and drill, what is due next and what is wrong."""
    from opsplane.backup.status import statuses

    plane = request.app.state.plane
    backups = plane.context.backups  # how far the WAL archive reaches, as serve last looked
    archived = backups.archived if backups is not None else None
    return await _run(request, lambda session: [
        item.as_dict()
        for item in statuses(session, plane.inventory, now=plane.clock.now(), archived=archived)])


@router.get("/backups/{backup_id}", responses=READ_REFUSALS)
async def show_backup(request: Request, backup_id: int = BackupId,
                      _: Principal = Depends(require(Role.VIEWER))) -> dict[str, Any]:
    """One backup with its copies and what was recorded when it ended."""
    from opsplane.backup import service

    def work(session: Any) -> dict[str, Any]:
        row = service.get(session, backup_id)
        return service.as_dict(row, service.copies(session, [row.id])[row.id])

    return await _run(request, work)


@router.get("/restores", responses=READ_REFUSALS)
async def list_restores(
    request: Request, policy: str | None = Query(None),
    purpose: Literal["restore", "verify", "drill"] | None = Query(None),
    limit: int = Query(50, ge=1, le=1000), _: Principal = Depends(require(Role.VIEWER)),
) -> list[dict[str, Any]]:
    """Restores, verifications and drills, newest first, each with its report (RTO and RPO
    measured for drills, the checks for verifications)."""
    from opsplane.backup import service

    def work(session: Any) -> list[dict[str, Any]]:
        if policy is not None:
            _known(request, policy)
        return [service.restore_as_dict(row)
                for row in service.restores(session, policy=policy, purpose=purpose, limit=limit)]

    return await _run(request, work)


class WorkRequest(BaseModel):
    what: Literal["full", "diff", "incr", "verify", "drill"] = Field(
        "full", description="A backup of this kind (diff and incr: pgbackrest policies), a verification "
        "of the newest good backup, or a restore drill.")


@router.post("/backups/{policy}/requests", status_code=202, responses=CHANGE_REFUSALS)
async def ask_for_work(request: Request, policy: str, body: WorkRequest,
                       principal: Principal = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Ask `serve`'s backup worker for a backup, a verification or a drill of `policy` now; it is
    recorded and done in the order asked. The catalog and `/restores` show the outcome."""
    from opsplane.backup import service
    from opsplane.backup.policy import apply

    plane = request.app.state.plane

    def work(session: Any) -> dict[str, Any]:
        applied = apply(plane.inventory, policy)
        if body.what in ("diff", "incr") and not applied.physical:
            raise HTTPException(409, f"{policy} is backed up by {applied.engine}, which takes full "
                                     "backups only")
        key = service.request(session, policy=policy, component=applied.component, what=body.what,
                              actor=principal.actor, now=plane.clock.now())
        return {"requested": key, "policy": policy, "what": body.what}

    answer = await _run(request, work)
    plane.wake_worker("backup")
    return answer


def _known(request: Request, policy: str) -> None:
    from opsplane.backup.policy import apply

    apply(request.app.state.plane.inventory, policy)


async def _run(request: Request, work: Callable[[Any], T]) -> T:
    """`work` in a session off the event loop; an unknown backup or policy becomes 404."""
    from opsplane.backup.policy import UnknownPolicy
    from opsplane.backup.service import NoSuchBackup

    return await in_session(request, work, {NoSuchBackup: 404, UnknownPolicy: 404})
