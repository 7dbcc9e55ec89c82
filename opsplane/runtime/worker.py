"""The runtime follower of `serve`: the supervisor's notices, as they happen.

A service whose process exited, or that stopped or started answering, is looked at now: its
checks and scrapes run outside their slots, and a rule cycle runs as soon as they are done
(docs/decisions/0016-runtime-exits-start-checks.md). The services the runtime gave up on are
the alerts worker's `opsplane_service_not_running` series.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from opsplane.workers import LoopWorker, WorkerContext

if TYPE_CHECKING:
    from opsplane.drivers.runtime import RuntimeWatch
    from opsplane.runtime.liveness import ServiceLiveness

log = logging.getLogger("opsplane.server")


class RuntimeFollower(LoopWorker):
    """Follows the runtime's notices for as long as serve runs. Every replica may: the
    supervisor runs on its own machine, and what it says only makes checks run sooner."""

    singleton = False

    def __init__(self, ctx: WorkerContext, runtime: RuntimeWatch) -> None:
        super().__init__("runtime", ctx)
        self.runtime = runtime
        self.liveness: ServiceLiveness | None = None  # made when the runtime is first followed
        ctx.liveness = self

    def down_for_good(self) -> dict[str, int]:
        """The services the runtime will not start again (none before it is followed)."""
        return self.liveness.down_for_good() if self.liveness is not None else {}

    async def run(self) -> None:
        from opsplane.runtime.liveness import ServiceLiveness

        liveness = self.liveness = ServiceLiveness()
        async for notice in self.runtime.watch():
            try:
                services = liveness.apply(notice)
                if services:
                    self._look_now(services)
            except Exception as exc:  # one odd notice must not end following the runtime
                self.failed(exc)
                log.exception("could not act on the runtime's %s notice", notice.kind)
            self.ran()

    def _look_now(self, services: set[str]) -> None:
        """Run the checks and scrapes of `services` now, and a rule cycle as soon as they are
        done."""
        runs: list[asyncio.Future[Any]] = []
        for looker in self.ctx.lookers:
            runs += looker.look_now(services)
        log.info("runtime: %s changed; checking now", ", ".join(sorted(services)))
        if self.ctx.rules is not None:
            self.ctx.rules.hurry(runs)


def build(ctx: WorkerContext) -> RuntimeFollower | None:
    """Only when opsplane's runtime runs the inventory's services."""
    return RuntimeFollower(ctx, ctx.runtime) if ctx.runtime is not None else None
