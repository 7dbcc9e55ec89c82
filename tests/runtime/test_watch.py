"""Watching the supervisor: an exit is told the moment it is seen, followed by the state that
comes of it, and a watcher carries on through the supervisor's absence and restart."""

from __future__ import annotations

import asyncio
import os
import signal

from opsplane.drivers.runtime import RuntimeNotice
from opsplane.drivers.runtime.watch import follow, notice_of
from tests.runtime.platforms import Platform, answers, service_yaml
from tests.support.polling import wait_for_async


def states_of(notice: RuntimeNotice, service: str) -> list[str]:
    return [s.state for s in notice.instances if s.service == service]


async def test_an_exit_is_told_at_once_and_the_watcher_follows_the_next_supervisor(
        platform: Platform, free_port: int) -> None:
    platform.write(service_yaml("payments", port=free_port, restart="never"))
    driver = platform.driver()
    notices: list[RuntimeNotice] = []

    async def watch() -> None:
        async for notice in follow(driver.paths, retry=0.1):
            notices.append(notice)

    watcher = asyncio.create_task(watch())  # before there is any supervisor
    try:
        await asyncio.sleep(0.3)
        assert notices == []  # nothing to follow, and no error either
        await asyncio.to_thread(driver.up)
        await wait_for_async(lambda: answers(free_port), "payments to answer")
        await wait_for_async(lambda: any(states_of(n, "payments") == ["running"] for n in notices),
                             "payments running")

        [status] = [s for s in driver.status() if s.service == "payments"]
        os.kill(status.pid, signal.SIGKILL)
        await wait_for_async(lambda: any(states_of(n, "payments") == ["failed"] for n in notices),
                             "payments failed")
        exits = [i for i, n in enumerate(notices) if n.kind == "exited"]
        failed = next(i for i, n in enumerate(notices) if states_of(n, "payments") == ["failed"])
        assert len(exits) == 1 and exits[0] < failed  # the exit first, then what came of it
        told = notices[exits[0]]
        assert (told.service, told.instance, told.pid, told.exit) == ("payments", 0, status.pid, "signal 9")

        # `down` of everything ends the supervisor: the last word is that nothing runs
        await asyncio.to_thread(driver.down)
        await wait_for_async(lambda: notices[-1].kind == "lost", "the supervisor to go")
        assert notices[-2].kind == "state" and notices[-2].instances == ()
        seen = len(notices)
        await asyncio.to_thread(driver.up)  # a new supervisor
        await wait_for_async(lambda: any(states_of(n, "payments") == ["running"] for n in notices[seen:]),
                    "payments running under the new supervisor")
        assert notices[seen].kind == "state"
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


def test_a_line_this_version_does_not_know_is_passed_over() -> None:
    assert notice_of({"event": "sampled", "cpu": 3}) is None
    assert notice_of({"event": "exited", "service": "web", "instance": 1, "pid": 7, "exit": "exit 1"}) == \
        RuntimeNotice("exited", service="web", instance=1, pid=7, exit="exit 1")
