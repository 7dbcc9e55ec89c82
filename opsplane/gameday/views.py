"""Game day routes: viewers read the scenarios and the game days with their reports; operators
ask `serve`'s game day worker to play one (a game day changes the world)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel, Field

from opsplane.api.errors import declare
from opsplane.api.store import in_session
from opsplane.auth.deps import require
from opsplane.auth.service import Principal, Role

router = APIRouter(tags=["gamedays"])
T = TypeVar("T")
GamedayId = Path(ge=1, le=2**31 - 1, description="The game day's number.")
READ_REFUSALS = declare(404, meaning={404: "No such game day."})
PLAY_REFUSALS = declare(409, 422, meaning={
    409: "serve runs no game day worker here (its inventory runs no services and has no game days).",
    422: "No such scenario, a duration out of bounds, or a scenario that cannot be played here "
         "(the message says why; nothing was changed)."})


class PlayRequest(BaseModel):
    scenario: str = Field(description="A scenario `GET /gamedays/scenarios` lists.")
    max_duration: float | None = Field(None, gt=0, le=4 * 3600,
                                       description="Undo the fault after this many seconds at the latest.")


@router.get("/gamedays/scenarios")
async def list_scenarios(request: Request,
                         _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """The scenarios a game day can play here: shipped for the inventory's components, or its own."""
    from opsplane.gameday.catalog import scenarios, source_of

    inventory = request.app.state.plane.inventory
    return [{"name": name, "source": source_of(inventory, name), **s.model_dump(mode="json")}
            for name, s in sorted(scenarios(inventory).items())]


@router.get("/gamedays")
async def list_gamedays(request: Request, limit: int = Query(50, ge=1, le=1000),
                        _: Principal = Depends(require(Role.VIEWER))) -> list[dict[str, Any]]:
    """Game days, newest first, each with its report once it has one."""
    from opsplane.gameday import service

    return await _run(request, lambda session: [service.as_dict(r)
                                                for r in service.get_all(session, limit=limit)])


@router.get("/gamedays/{gameday_id}", responses=READ_REFUSALS)
async def show_gameday(request: Request, gameday_id: int = GamedayId,
                       format: str = Query("json", pattern="^(json|markdown)$",
                                           description="json, or markdown for the report as Markdown."),
                       _: Principal = Depends(require(Role.VIEWER))) -> Response:
    """A game day with its report (JSON), or its report as Markdown."""
    from fastapi.responses import JSONResponse

    from opsplane.gameday import service

    def work(session: Any) -> tuple[dict[str, Any], str]:
        row = service.get_or_raise(session, gameday_id=gameday_id)
        return service.as_dict(row), row.markdown

    found, text = await _run(request, work)
    if format == "markdown":
        return PlainTextResponse(text, media_type="text/markdown")
    return JSONResponse(found)


@router.post("/gamedays", status_code=202, responses=PLAY_REFUSALS)
async def play(request: Request, body: PlayRequest,
               principal: Principal = Depends(require(Role.OPERATOR))) -> dict[str, Any]:
    """Ask `serve`'s game day worker to play a scenario now. The scenario is checked first (a
    refusal is 422 and changes nothing); `GET /gamedays/{id}` follows it to its report."""
    from opsplane.gameday import service
    from opsplane.gameday.datastores import FaultRefused
    from opsplane.gameday.faults import Where, open_fault
    from opsplane.gameday.flows import scenario_named

    plane = request.app.state.plane
    try:
        plane.worker("gameday")
    except KeyError:
        raise HTTPException(409, "serve runs no game day worker: its inventory runs no services and has no "
                                 "game day scenarios") from None
    base_dir = request.app.state.inventory_dir

    def work(session: Any) -> dict[str, Any]:
        import os

        scenario = scenario_named(plane.inventory, body.scenario, max_duration=body.max_duration)
        try:
            open_fault(scenario, Where(plane.inventory, base_dir, dict(os.environ), principal.actor)).check()
        except FaultRefused as exc:
            service.refused(session, name=body.scenario, scenario=scenario, reason=str(exc),
                            actor=principal.actor, now=plane.clock.now())
            session.commit()
            raise
        row = service.create(session, name=body.scenario, scenario=scenario, trigger="api",
                             actor=principal.actor, now=plane.clock.now(), max_duration=scenario.max_duration,
                             state="requested")
        return service.as_dict(row)

    answer = await _run(request, work)
    plane.wake_worker("gameday")
    return answer


async def _run(request: Request, work: Callable[[Any], T]) -> T:
    from opsplane.errors import UsageError
    from opsplane.gameday.datastores import FaultRefused
    from opsplane.gameday.service import GamedayNotFound

    return await in_session(request, work, {GamedayNotFound: 404, FaultRefused: 422, UsageError: 422})
