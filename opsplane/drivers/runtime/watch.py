"""Following a supervisor: its `watch` connection, as `RuntimeNotice`s.

The watcher connects to the supervisor's socket and asks `{"op": "watch"}`. The supervisor
answers with every instance's status and keeps the connection open, writing one JSON line
for each exit, the moment it sees the process end, and one with every instance's status
after each change:

    {"ok": true, "op": "watch", "pid": 4242, "instances": [...]}
    {"event": "exited", "service": "payments", "instance": 0, "pid": 4311, "exit": "signal 9"}
    {"event": "state", "instances": [...]}

Nothing is polled while a supervisor runs: an exit reaches the watcher as soon as the
supervisor's event loop has seen it. Without a supervisor (none started yet, or one that
stopped or died) the watcher tries again every `retry` seconds, and a new supervisor is
followed from its first state on; an exit while none was followed shows in that state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from opsplane.drivers.runtime.base import InstanceStatus, RuntimeNotice
from opsplane.drivers.runtime.protocol import StatePaths, unix_path

log = logging.getLogger("opsplane.runtime")

RETRY = 1.0
# A supervisor from before `watch` refuses it; asking it again every second is pointless.
_REFUSED_RETRY = 30.0
_LINE_LIMIT = 4 * 1024 * 1024


class WatchRefused(Exception):
    """The supervisor answered the `watch` request with an error (an older supervisor)."""


async def follow(paths: StatePaths, *, retry: float = RETRY) -> AsyncIterator[RuntimeNotice]:
    """Notices of the supervisor of `paths` for as long as the caller iterates; "lost" once
    each time a followed supervisor goes away. Never raises for the supervisor being absent,
    gone or unreadable."""
    following = False
    refused_said = False
    while True:
        wait = retry
        try:
            async for notice in _session(paths):
                if not following:
                    log.info("following the runtime's supervisor at %s", paths.socket)
                following, refused_said = True, False
                yield notice
        except WatchRefused as exc:
            wait = max(retry, _REFUSED_RETRY)
            if not refused_said:
                log.warning("the runtime's supervisor at %s does not offer exit notices (%s); restart "
                            "it with a newer opsplane (`opsplane down`, `opsplane up`) to have exits "
                            "checked at once", paths.socket, exc)
                refused_said = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # no supervisor, or one that went away mid-line: as absent
        except (ValueError, KeyError, TypeError) as exc:  # a line that is not what it should be
            log.warning("unreadable notice from the runtime's supervisor at %s (%s); connecting again",
                        paths.socket, exc)
        if following:
            log.info("the runtime's supervisor at %s went away; waiting for the next one", paths.socket)
            following = False
            yield RuntimeNotice("lost")
        await asyncio.sleep(wait)


async def _session(paths: StatePaths) -> AsyncIterator[RuntimeNotice]:
    """One connection's notices, until the supervisor closes it."""
    if not paths.socket.exists():
        return
    with unix_path(paths.socket) as address:
        reader, writer = await asyncio.open_unix_connection(address, limit=_LINE_LIMIT)
    try:
        writer.write(b'{"op": "watch"}\n')
        await writer.drain()
        first = json.loads(await reader.readline() or b"null")
        if not isinstance(first, dict):
            return  # closed before answering: a supervisor on its way out
        if not first.get("ok"):
            raise WatchRefused(str(first.get("error", "refused")))
        yield RuntimeNotice("state", instances=_statuses(first))
        while line := await reader.readline():
            notice = notice_of(json.loads(line))
            if notice is not None:
                yield notice
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def notice_of(message: Mapping[str, Any]) -> RuntimeNotice | None:
    """The notice one line of a watch connection carries; None for what this version does not
    know (a newer supervisor may say more)."""
    event = message.get("event")
    if event == "state":
        return RuntimeNotice("state", instances=_statuses(message))
    if event == "exited":
        instance = message.get("instance")
        pid = message.get("pid")
        return RuntimeNotice("exited", service=str(message["service"]),
                             instance=int(instance) if instance is not None else None,
                             pid=int(pid) if pid is not None else None, exit=message.get("exit"))
    return None


def _statuses(message: Mapping[str, Any]) -> tuple[InstanceStatus, ...]:
    return tuple(InstanceStatus.from_dict(item) for item in message.get("instances") or ())
