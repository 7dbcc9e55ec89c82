"""Running a route's work in a store session off the event loop, with the domain's refusals
answered as HTTP: each route module names which of its exceptions mean 404, 409 or 422."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
Refusals = Mapping[type[Exception], int]


async def in_session(request: Request, work: Callable[[Any], T], refusals: Refusals) -> T:
    """`work(session)` on a worker thread in one session of the control plane's store; an
    exception of a class in `refusals` (or a subclass) becomes that HTTP status with its message.
    The first matching class wins, so name the narrower ones first."""
    store = request.app.state.plane.store

    def run() -> T:
        with store.session() as session:
            return work(session)

    try:
        return await run_in_threadpool(run)
    except tuple(refusals) as exc:
        status = next(code for kind, code in refusals.items() if isinstance(exc, kind))
        raise HTTPException(status, str(exc)) from None
