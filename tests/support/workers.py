"""Domain workers from outside opsplane, registered through `OPSPLANE_EXTRA_WORKERS`: a fake
domain that says on its output when it starts, is woken and stops; one that crashes when woken;
one that falls behind its schedule at once."""

from __future__ import annotations

import asyncio

from opsplane.workers import LoopWorker, WorkerContext


class FakeDomain(LoopWorker):
    """A round each time it is woken, else once an hour; each step printed."""

    def __init__(self, ctx: WorkerContext, name: str = "fake") -> None:
        super().__init__(name, ctx)
        self.rounds = 0

    async def opening(self) -> None:
        print(f"{self.name} worker started", flush=True)

    async def run(self) -> None:
        while True:
            self.expect(3600)
            await self.pause(3600)
            self.rounds += 1
            self.ran()
            print(f"{self.name} worker woken ({self.rounds})", flush=True)

    async def closing(self) -> None:
        print(f"{self.name} worker stopped", flush=True)


class Crashing(FakeDomain):
    async def run(self) -> None:
        await self.pause(3600)
        raise RuntimeError("the backup disk is gone")


class Stuck(FakeDomain):
    """Due at once, and never done: behind its schedule from the start."""

    async def run(self) -> None:
        self.expect(0)
        await asyncio.get_running_loop().create_future()


def build(ctx: WorkerContext) -> FakeDomain:
    return FakeDomain(ctx)


def crashing(ctx: WorkerContext) -> Crashing:
    return Crashing(ctx, "crashing")


def stuck(ctx: WorkerContext) -> Stuck:
    worker = Stuck(ctx, "stuck")
    worker.stuck_after = 0.2
    return worker
