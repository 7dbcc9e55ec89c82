"""The shares a deploy gives its new release survive a `serve` started again in the middle of
the deploy: the platform reads them from the store, so rewriting a proxy for one service keeps
the split of every other service's deploy under way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsplane.clock import ManualClock
from opsplane.deploy import service
from opsplane.deploy.platform import LivePlatform
from opsplane.deploy.runner import Runner
from opsplane.store import Store
from tests.deploy.test_runner import START, RecordingPlatform, ask, settings


def _fresh_platform(store: Store, tmp_path: Path) -> LivePlatform:
    """What `serve` builds when it starts: nothing in memory, the store at hand."""
    unused: Any = None  # shares() asks neither the inventory nor the runtime
    return LivePlatform(unused, settings(), unused, base_dir=tmp_path, env=None,
                        clock=ManualClock(START), sessions=store.session)


def test_a_platform_started_mid_deploy_knows_its_share_from_the_store(store: Store, tmp_path: Path) -> None:
    clock = ManualClock(START)
    first = RecordingPlatform()
    runner = Runner(settings(), first, store.session, clock=clock, holder="serve-1")
    deploy_id = ask(store)
    for _ in range(20):
        runner.advance(deploy_id)
        clock.advance(10)
        with store.session() as session:
            if service.get(session, deploy_id).percent > 0:
                break

    assert _fresh_platform(store, tmp_path).shares() == {"catalog": ("v2", 10.0, ())}


def test_a_finished_deploy_gives_no_share(store: Store, tmp_path: Path) -> None:
    deploy_id = ask(store)
    with store.session() as session:
        service.operate(session, service.get(session, deploy_id), "abort", actor="cli:ana", now=START)
    clock = ManualClock(START)
    runner = Runner(settings(), RecordingPlatform(), store.session, clock=clock, holder="serve-1")
    for _ in range(20):
        runner.advance(deploy_id)
        clock.advance(10)

    with store.session() as session:
        assert service.get(session, deploy_id).state in ("aborted", "rolled_back")
    assert _fresh_platform(store, tmp_path).shares() == {}
