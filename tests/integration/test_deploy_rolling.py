"""Rolling deploys of the shop's catalog behind a real nginx under steady load (and their
rollback), rolling deploys without any proxy, and `opsplane scale` behind a real HAProxy: one
instance replaced at a time, each drained first and gated on its health, no request failing, and
a scaled service's instances in the proxy's routes, each answering requests, exactly while they run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.deploy_platform import (
    SERVICE,
    DeployPlatform,
    Load,
    instance_requests,
    running,
)
from tests.support.polling import wait_for

pytestmark = pytest.mark.slow

RATE = 60.0
HEALTH_LAG = 0.5  # how much later than the deploy's own probe the watch may first see an instance healthy


class HealthWatch:
    """Asks each of `ports` for /health directly (not through the proxy) in rounds, every
    `every` seconds, in a thread; keeps each round as (time, {port: release answered or None})."""

    def __init__(self, ports: list[int], every: float = 0.1) -> None:
        self.ports, self.every = ports, every
        self.rounds: list[tuple[float, dict[int, str | None]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="health-watch")

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with httpx.Client(trust_env=False, timeout=1) as client:
            while not self._stop.is_set():
                found = {port: self._version(client, port) for port in self.ports}
                self.rounds.append((time.time(), found))
                self._stop.wait(self.every)

    @staticmethod
    def _version(client: httpx.Client, port: int) -> str | None:
        try:
            answer = client.get(f"http://127.0.0.1:{port}/health")
        except httpx.HTTPError:
            return None
        return str(answer.json().get("version")) if answer.status_code == 200 else None

    def most_down_at_once(self) -> int:
        return max((sum(1 for v in found.values() if v is None) for _, found in self.rounds), default=0)

    def first_healthy(self, port: int, version: str, since: float = 0.0) -> float | None:
        """When `port` first answered healthy on `version` (from `since` on)."""
        return next((at for at, found in self.rounds if at >= since and found.get(port) == version), None)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[DeployPlatform]:
    """Three instances behind nginx, whose drains are reloads (HAProxy's are runtime API commands:
    the scale test below, and both engines in the blue-green tests)."""
    with running(DeployPlatform(tmp_path / "platform", engine="nginx", instances=3,
                                strategy="rolling")) as platform:
        yield platform


def test_a_rolling_deploy_and_its_rollback_replace_one_drained_instance_at_a_time(
        proxied: DeployPlatform) -> None:
    ports = {item["instance"]: int(item["port"]) for item in proxied.own_instances()}
    assert len(ports) == 3
    with Load(proxied.main_route, rate=RATE) as load, HealthWatch(list(ports.values())) as health:
        deploy = proxied.wait_deploy(proxied.deploy("v2"))
        proxied.cli("rollback", SERVICE, "--no-wait")  # undoes the finished deploy
        undo = proxied.wait_deploy(int(deploy["id"]) + 1)
        load_summary = load.summary()

    assert (deploy["state"], deploy["strategy"]) == ("succeeded", "rolling"), deploy["reason"]
    assert (undo["state"], undo["from"], undo["to"]) == ("succeeded", "v2", "v1"), undo["reason"]
    assert not load.failures(), f"{load_summary}\n{proxied.timeline()}"
    assert load.achieved_rate() >= 50, load_summary
    assert not proxied.proxy_retries(), "the proxy sent requests to an instance that was being replaced"
    print(f"\n{proxied.engine}: {load_summary}")

    replaced = [e for e in proxied.events("runtime.replaced") if e["service"] == SERVICE]
    assert [(e["details"]["instance"], e["details"]["from"], e["details"]["to"]) for e in replaced] == \
        [(0, "v1", "v2"), (1, "v1", "v2"), (2, "v1", "v2"), (0, "v2", "v1"), (1, "v2", "v1"), (2, "v2", "v1")]
    steps = [e for e in proxied.events("deploy.step") if e["details"]["kind"] == "replace"]
    assert [e["details"]["instance"] for e in steps] == [0, 1, 2]
    for index in range(3):
        healthy = health.first_healthy(ports[index], "v2")
        assert healthy is not None, f"instance {index} never answered healthy on v2"
        assert replaced[index]["at"] <= healthy <= steps[index]["at"] + HEALTH_LAG
        if index < 2:
            assert steps[index]["at"] <= replaced[index + 1]["at"], "the next one went before this one passed"
        assert health.first_healthy(ports[index], "v1", since=replaced[3 + index]["at"]) is not None
    assert health.most_down_at_once() <= 1
    assert {(i["instance"], i["version"], i["port"]) for i in proxied.own_instances()} == \
        {(index, "v1", port) for index, port in ports.items()}
    assert proxied.releases() == {SERVICE: "v1"}


def test_a_service_without_a_proxy_deploys_rolling_only(tmp_path: Path) -> None:
    with running(DeployPlatform(tmp_path / "platform", engine=None, instances=2,
                                strategy="rolling")) as platform:
        for strategy in ("canary", "blue-green"):
            refused = platform.run("deploy", SERVICE, "v2", "--strategy", strategy)
            said = " ".join(refused.stderr.split())
            assert refused.returncode == 3, (refused.stdout, refused.stderr)
            assert f"a {strategy} deploy moves requests through a proxy, and catalog has none" in said
            assert "use --strategy rolling" in said
        assert platform.counts()["deploys"] == 0

        deploy = platform.wait_deploy(platform.deploy("v2"))

        assert deploy["state"] == "succeeded", deploy["reason"]
        assert deploy["strategy"] == "rolling"
        assert {i["version"] for i in platform.own_instances()} == {"v2"}
        assert len(platform.own_instances()) == 2
        assert platform.releases() == {SERVICE: "v2"}
        answer = httpx.get(platform.url + "/version", timeout=5, trust_env=False)
        assert answer.json()["version"] == "v2"


def _serving(ports: set[int], load: Load, seconds: float = 2.0) -> dict[int, float]:
    """Requests of the main route each instance answered while the load ran `seconds` more."""
    before = {port: instance_requests(port) for port in ports}
    until = time.time() + seconds
    wait_for(lambda: load.recorded()[-1].sent >= until, f"{seconds:g} s of load", timeout=seconds + 10)
    return {port: instance_requests(port) - before[port] for port in ports}


def test_scale_adds_instances_to_the_proxy_and_removes_them_without_a_failed_request(tmp_path: Path) -> None:
    platform = DeployPlatform(tmp_path / "platform", engine="haproxy", instances=2)
    with running(platform, serve=False), Load(platform.main_route, rate=RATE) as load:
        wait_for(load.recorded, "the first answers")
        platform.cli("scale", SERVICE, "3")
        ports = {int(i["port"]) for i in platform.own_instances()}
        assert len(ports) == 3 and platform.routed_ports() == ports
        assert all(count > 0 for count in _serving(ports, load).values()), "an instance got no requests"

        platform.cli("scale", SERVICE, "1")
        (kept,) = [int(i["port"]) for i in platform.own_instances()]
        assert platform.routed_ports() == {kept}
        served = _serving({kept}, load)
        load.stop()

        assert served[kept] > 0
        assert not load.failures(), f"{load.summary()}\n{platform.timeline()}"
        assert not platform.proxy_retries(), "the proxy sent requests to instances that were stopping"
        assert load.achieved_rate() >= 50, load.summary()
        print(f"\nscale behind haproxy: {load.summary()}")
