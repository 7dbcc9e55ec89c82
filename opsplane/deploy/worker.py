"""`serve`'s deploy worker: every second, one round of each deploy that moves (queued, running,
rolling back), on the store's threads, since steps start processes and reload proxies.

Each step is claimed from the store (`deploy.runner`), so a `serve` killed in the middle of a
deploy is followed by one that resumes it at the step it was at.
"""

from __future__ import annotations

import asyncio
import os
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

from opsplane.workers import LoopWorker, WorkerContext

POLL = 1.0


class DeployWorker(LoopWorker):
    """Advances deploys. Every replica may run it: each step is claimed before it is done."""

    singleton = False

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__("deploy", ctx)
        self._runner: Any = None
        self._active: list[dict[str, Any]] = []  # the deploys under way, as the last round left them
        from opsplane.deploy.telemetry import DeployMetrics

        ctx.metrics.registry.register(DeployMetrics(lambda: self._active))

    def _build(self) -> Any:
        from opsplane.deploy.platform import LivePlatform
        from opsplane.deploy.runner import Runner

        settings = self.ctx.inventory.deploy
        runtime: Any = self.ctx.runtime
        base = Path(getattr(runtime, "base_dir", Path.cwd()))
        samples = self.ctx.samples
        platform = LivePlatform(self.ctx.inventory, settings, runtime, base_dir=base, env=self.ctx.env,
                                clock=self.ctx.clock, environ=dict(self.ctx.environ or os.environ),
                                samples=samples.locked_source if samples is not None else None,
                                sessions=self.ctx.store.session)
        return Runner(settings, platform, self.ctx.store.session, clock=self.ctx.clock,
                      holder=f"{socket.gethostname()}:{os.getpid()}")

    async def run(self) -> None:
        self._runner = self._build()
        try:
            await self.every(POLL, self._round, doing="advancing deploys")
        finally:
            self._runner.close()

    async def _round(self) -> datetime | None:
        await asyncio.to_thread(self._runner.round)  # steps wait on processes: not a store thread
        self._active = await self.ctx.in_store(self._read_active)
        self.ran()
        return None

    def _read_active(self) -> list[dict[str, Any]]:
        from opsplane.deploy import service

        with self.ctx.store.session() as session:
            return [service.as_dict(row) for row in service.active(session)]


def build(ctx: WorkerContext) -> DeployWorker | None:
    """Only when opsplane's runtime runs the inventory's services: deploys change what it runs."""
    return DeployWorker(ctx) if ctx.runtime is not None else None
