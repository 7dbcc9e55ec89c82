"""`serve`'s game day worker: plays the game days asked for through the API and the scheduled
one (`gamedays.schedule`, none unless the inventory gives one), and undoes the fault of any game
day whose player died.

Every 30 seconds (and when woken by a request) it looks for game days cut off (their claim
lapsed: `GameDays.recover`), then plays what is due, one at a time on a thread of its own. A
scheduled slot is claimed before it is played (`gameday-slot:<scenario>:<slot>`), so a second
replica never plays the same slot, and a slot is only played within an hour of its time: a
control plane that was down at the quarter's game day does not inject a fault at a surprising
moment later. When `serve` stops mid-game-day, the fault is undone before the worker ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsplane.workers import LoopWorker, WorkerContext

if TYPE_CHECKING:
    from opsplane.gameday.flows import GameDays
    from opsplane.gameday.models import GamedaySchedule

log = logging.getLogger(__name__)

POLL = 30.0
GRACE = 3600.0  # a scheduled slot is played at most this long after its time
SLOT_LEASE = 7 * 86400.0  # a slot is done once claimed
ACTOR = "opsplane"
_STOP_WAIT = 120.0  # how long `serve` waits at stop for a game day to undo its fault


def due_slot(schedule: GamedaySchedule, now: datetime) -> datetime | None:
    """The scheduled slot to play at `now`: the latest fire time, when it is at most GRACE old."""
    from opsplane.backup.schedule import parse_cron

    slot = parse_cron(schedule.cron).previous_at_or_before(now, schedule.time_zone)
    return slot if now - slot <= timedelta(seconds=GRACE) else None


def next_slot(schedule: GamedaySchedule, now: datetime) -> datetime:
    from opsplane.backup.schedule import parse_cron

    return parse_cron(schedule.cron).next_after(now, schedule.time_zone)


class GamedayWorker(LoopWorker):
    """Requested and scheduled game days, and faults left by players that died."""

    singleton = False

    def __init__(self, ctx: WorkerContext) -> None:
        from opsplane.gameday.models import LONGEST

        super().__init__("gameday", ctx, stuck_after=LONGEST + 3600.0)  # a round lasts a whole game day
        self.days: GameDays | None = None
        self._idle = threading.Event()
        self._idle.set()

    async def run(self) -> None:
        from opsplane.gameday.flows import GameDays

        self.days = GameDays(self.ctx.store, self.ctx.inventory, base_dir=self.ctx.inventory_dir,
                             environ=dict(self.ctx.environ or os.environ), clock=self.ctx.clock, actor=ACTOR)
        try:
            await self.every(POLL, self._round, doing="playing game days")
        finally:
            self.days.close()

    async def closing(self) -> None:
        if self.days is not None:
            self.days.stopping.set()  # the game day in play undoes its fault and ends now
            await asyncio.to_thread(self._idle.wait, _STOP_WAIT)

    async def _round(self) -> datetime | None:
        assert self.days is not None
        for line in await asyncio.to_thread(self._busy, self.days.recover) or []:
            log.warning("%s", line)
        requested = await self.ctx.in_store(self._requested)
        for gameday_id, name in requested:
            await asyncio.to_thread(self._busy, self._play_requested, gameday_id, name)
        schedule = self.ctx.inventory.gamedays.schedule
        if schedule is None:
            return None
        now = self.ctx.clock.now()
        slot = due_slot(schedule, now)
        if slot is not None:
            claim = await self.ctx.in_store(self._claim_slot, schedule.scenario, slot)
            if claim is not None:
                await asyncio.to_thread(self._busy, self._play_scheduled, schedule)
                await self.ctx.in_store(self._finish, claim)
        return next_slot(schedule, self.ctx.clock.now())

    def _busy(self, work: Any, *args: Any) -> Any:
        """`work` on this thread, marked busy so that `serve` waits for its fault to be undone."""
        self._idle.clear()
        try:
            return work(*args)
        except Exception as exc:  # a refused scenario, a store out of reach: counted, tried next round
            self.failed(exc)
            log.warning("game day: %s", exc)
            return None
        finally:
            self._idle.set()

    # --- on the store's threads ----------------------------------------------------------

    def _requested(self) -> list[tuple[int, str]]:
        from opsplane.gameday import service

        with self.ctx.store.session() as session:
            asked = service.get_all(session, states=("requested",))
            return [(row.id, row.scenario) for row in reversed(asked)]

    def _claim_slot(self, scenario: str, slot: datetime) -> Any:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            return claims.take(session, f"gameday-slot:{scenario}:{slot.isoformat()}", holder=self._holder(),
                               now=self.ctx.clock.now(), lease=SLOT_LEASE)

    def _finish(self, claim: Any) -> None:
        from opsplane.store import claims

        with self.ctx.store.session() as session:
            claims.finish(session, claim, self.ctx.clock.now())

    def _holder(self) -> str:
        from opsplane.gameday.flows import holder

        return holder()

    # --- on a thread of its own ------------------------------------------------------------

    def _play_requested(self, gameday_id: int, name: str) -> None:
        from opsplane.gameday import service
        from opsplane.gameday.models import Scenario

        assert self.days is not None
        with self.ctx.store.session() as session:
            row = service.get_or_raise(session, gameday_id=gameday_id)
            scenario = Scenario.model_validate(row.definition)
        played = self.days.play(name, scenario, trigger="api", requested=gameday_id)
        log.info("game day %d (%s): %s", played.id, name, played.verdict)

    def _play_scheduled(self, schedule: GamedaySchedule) -> None:
        from opsplane.gameday.flows import scenario_named

        assert self.days is not None
        scenario = scenario_named(self.ctx.inventory, schedule.scenario, max_duration=schedule.max_duration)
        played = self.days.play(schedule.scenario, scenario, trigger="schedule")
        log.info("scheduled game day %d (%s): %s", played.id, schedule.scenario, played.verdict)


def build(ctx: WorkerContext) -> GamedayWorker | None:
    """When the inventory runs services (game days can be asked for) or has game days of its own."""
    inventory = ctx.inventory
    wanted = inventory.runs_services or inventory.gamedays.scenarios or inventory.gamedays.schedule
    return GamedayWorker(ctx) if wanted else None
