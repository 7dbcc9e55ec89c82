"""Dashboard routes for backups: every policy's state, and one policy's catalog, restores and
events. Both declare `Depends(viewer)` like every dashboard page; nothing here changes anything
(backups are run and proven by `serve`'s backup worker and `opsplane backup`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from opsplane.auth.service import Principal
from opsplane.web.session import viewer
from opsplane.web.views import page

if TYPE_CHECKING:  # the backup domain is imported by the first backup page shown
    from opsplane.web import backup_pages

router = APIRouter(tags=["dashboard"])


@router.get("/ui/backups", include_in_schema=False)
async def backup_list(request: Request, _: Principal = Depends(viewer)) -> Response:
    """Each policy: its last backup, its newest copy per repository against the RPO, 3-2-1, its
    last verification and drill, its next runs and its problems."""
    from opsplane.backup.compliance import duration_words
    from opsplane.web import backup_pages

    plane = request.app.state.plane

    def read() -> list[backup_pages.PolicyCard]:
        with plane.store.session() as session:
            return backup_pages.policy_cards(session, plane.inventory, now=plane.clock.now(),
                                             archived=_archived(plane))

    cards = await run_in_threadpool(read)
    return page(request, "backups.html", cards=cards,
                words=duration_words,
                failing=sum(1 for c in cards if c.state in ("failing", "problems")))


@router.get("/ui/backups/{policy}", include_in_schema=False)
async def backup_page(request: Request, policy: str, _: Principal = Depends(viewer)) -> Response:
    """One policy: its state, its catalog with the copies in each repository, its restores,
    verifications and drills with their reports, and its events."""
    from opsplane.backup.compliance import duration_words
    from opsplane.web import backup_pages

    plane = request.app.state.plane

    def read() -> backup_pages.PolicyPage | None:
        with plane.store.session() as session:
            return backup_pages.policy_page(session, plane.inventory, policy, now=plane.clock.now(),
                                            archived=_archived(plane))

    detail = await run_in_threadpool(read)
    if detail is None:
        return page(request, "backup_missing.html", status_code=404, name=policy,
                    policies=list(plane.inventory.backup.policies))
    return page(request, "backup.html", detail=detail, c=detail.card, events=detail.events,
                words=duration_words,
                drill_targets=backup_pages.drill_targets, report_lines=backup_pages.report_lines)


def _archived(plane: Any) -> Any:
    """How far each policy's WAL archive reaches, as serve's backup worker last looked."""
    backups = plane.context.backups
    return backups.archived if backups is not None else None
