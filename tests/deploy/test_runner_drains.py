"""No deploy step replaces an instance the proxy still sends requests to: the settle, undoing a
deploy after it settled, and `opsplane rollback` of a finished deploy drain each instance first,
as a rolling deploy does. (Replacing a serving instance makes the proxy retry its requests
elsewhere, and fail them once every instance has been tried: nginx answered 502 for a second
and a half when a rollback came after the settle.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opsplane.clock import ManualClock
from opsplane.deploy import service
from opsplane.deploy.runner import Runner
from opsplane.store import Store
from tests.deploy.test_runner import START, RecordingPlatform, ask, drive, settings


class ServingPlatform(RecordingPlatform):
    """Knows which of the service's own instances get requests, as `drivers.traffic.routes`
    weights them, and notes each one replaced while it had a share."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.share: tuple[float, tuple[int, ...]] = (0.0, ())
        self.replaced_while_serving: list[tuple[int, str]] = []

    def shift(self, service: str, version: str, percent: float, *,
              drained: Sequence[int] = ()) -> dict[str, Any]:
        self.share = (percent, tuple(drained))
        return super().shift(service, version, percent, drained=drained)

    def stop_extra(self, service: str, version: str) -> None:
        super().stop_extra(service, version)
        self.share = (0.0, ())

    def serving(self, index: int) -> bool:
        percent, drained = self.share
        if not self.extra:
            percent = 0.0
        if all(i in drained for i in self.main):
            percent = 100.0 if self.extra else 0.0
        return index not in drained and percent < 100

    def replace(self, service: str, index: int, version: str) -> None:
        if self.serving(index):
            self.replaced_while_serving.append((index, version))
        super().replace(service, index, version)


def _advance_until(runner: Runner, deploy_id: int, clock: ManualClock, done: Any) -> None:
    for _ in range(100):
        if done():
            return
        runner.advance(deploy_id)
        clock.advance(10)
    raise AssertionError("the deploy never got there")


def test_undoing_a_deploy_after_it_settled_replaces_each_instance_drained(store: Store) -> None:
    clock = ManualClock(START)
    platform = ServingPlatform()
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    deploy_id = ask(store, "blue-green")
    _advance_until(runner, deploy_id, clock,
                   lambda: platform.main == {0: "v2", 1: "v2"} and not platform.extra)
    with store.session() as session:
        service.operate(session, service.get(session, deploy_id), "abort", actor="cli:ana", now=clock.now())

    assert drive(runner, clock, deploy_id, store) == "rolled_back"
    assert platform.main == {0: "v1", 1: "v1"} and platform.release == "v1"
    assert platform.replaced_while_serving == []


def test_rolling_back_a_finished_deploy_replaces_each_instance_drained(store: Store) -> None:
    clock = ManualClock(START)
    platform = ServingPlatform()
    runner = Runner(settings(), platform, store.session, clock=clock, holder="a")
    assert drive(runner, clock, ask(store, "blue-green"), store) == "succeeded"
    assert platform.replaced_while_serving == []  # the settle's instances had no share already
    with store.session() as session:
        undo, _ = service.roll_back_service(session, "catalog", actor="cli:ana", now=clock.now(),
                                            proxied=True)

    assert drive(runner, clock, undo, store) == "succeeded"
    assert platform.main == {0: "v1", 1: "v1"} and platform.release == "v1"
    assert platform.replaced_while_serving == []
