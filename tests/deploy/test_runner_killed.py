"""A `serve` killed at any point of a canary, right after it changed something and before it
recorded the step, is followed by the next one: the deploy ends as it would have, every step is
recorded once and in order, and the platform is left on one release set."""

from __future__ import annotations

from typing import Any

import pytest

from opsplane.clock import ManualClock
from opsplane.deploy import service
from opsplane.deploy.runner import Runner
from opsplane.store import Store
from tests.deploy.test_runner import START, RecordingPlatform, ask, drive, events, settings

CHANGES = ("start", "shift", "replace", "stop_extra", "set_release")  # what moves traffic or instances
# start, three shifts, then the settle: each own instance drained and replaced, requests back on
# the own instances, the extra ones stopped, the release recorded
WHOLE_CANARY = 11


class Killed(BaseException):
    """What `kill -9` leaves: the call returned, nothing after it ran (not an Exception, so
    nothing in the runner catches it)."""


class KilledAfter(RecordingPlatform):
    """Dies right after its `at`-th change (0: never)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.changes = at, 0

    def __getattribute__(self, name: str) -> Any:
        found = super().__getattribute__(name)
        if name not in CHANGES:
            return found

        def changed(*args: Any, **kwargs: Any) -> Any:
            result = found(*args, **kwargs)
            self.changes += 1
            if self.changes == self.at:
                raise Killed
            return result

        return changed


def _changes_of_a_whole_canary(store: Store) -> int:
    platform = KilledAfter(0)
    clock = ManualClock(START)
    assert drive(Runner(settings(), platform, store.session, clock=clock, holder="a"), clock,
                 ask(store), store) == "succeeded"
    return platform.changes


def test_a_whole_canary_makes_the_changes_the_kills_come_after(store: Store) -> None:
    assert _changes_of_a_whole_canary(store) == WHOLE_CANARY


@pytest.mark.parametrize("at", range(1, WHOLE_CANARY + 1))
def test_serve_killed_after_any_change_is_followed_to_the_same_end(store: Store, at: int) -> None:
    clock = ManualClock(START)
    platform = KilledAfter(at)
    deploy_id = ask(store)
    first = Runner(settings(), platform, store.session, clock=clock, holder="killed")
    try:
        drive(first, clock, deploy_id, store)
    except Killed:
        pass
    assert platform.changes == at, "killed after that change"

    clock.advance(61)  # the killed holder's claim lapses
    second = Runner(settings(), platform, store.session, clock=clock, holder="restarted")
    assert drive(second, clock, deploy_id, store) == "succeeded"

    assert platform.main == {0: "v2", 1: "v2"} and not platform.extra and platform.release == "v2"
    steps = [e.details["step"] for e in events(store, deploy_id) if e.kind == "deploy.step"]
    with store.session() as session:
        assert steps == list(range(len(service.get(session, deploy_id).plan)))  # each once, in order
