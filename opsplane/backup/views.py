"""Backup routes: viewers read the catalog, each policy's state against its RPO and 3-2-1, and
the restores, verifications and drills with their reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from opsplane.api.errors import declare
from opsplane.api.params import ROW_ID_MAX
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["backups"])
T = TypeVar("T")
BackupId = Path(ge=1, le=ROW_ID_MAX, description="The backup's number.")
READ_REFUSALS = declare(404, meaning={404: "No such backup, or no such backup policy."})


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
    return await _run(request, lambda session: [
        item.as_dict() for item in statuses(session, plane.inventory, now=plane.clock.now())])


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


def _known(request: Request, policy: str) -> None:
    from opsplane.backup.policy import apply

    apply(request.app.state.plane.inventory, policy)


async def _run(request: Request, work: Callable[[Any], T]) -> T:
    """Run `work` in a session off the event loop; an unknown backup or policy becomes 404."""
    from opsplane.backup.policy import UnknownPolicy
    from opsplane.backup.service import NoSuchBackup

    store = request.app.state.plane.store

    def run() -> T:
        with store.session() as session:
            return work(session)

    try:
        return await run_in_threadpool(run)
    except (NoSuchBackup, UnknownPolicy) as exc:
        raise HTTPException(404, str(exc)) from None
