"""Releases with real processes: `{version}` reaches the program, the recorded release is what
`up` runs (also after `down`), a track runs another release beside the service on free ports,
one that cannot start is reported within its deadline, and a rolling deploy replaces instances
one by one on their ports, each keeping its release across a killed supervisor."""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest

from opsplane.drivers.runtime.base import RuntimeFailure
from opsplane.errors import UsageError
from tests.runtime.platforms import Platform, answers, events, get_json, gone, running, service_yaml
from tests.support.polling import wait_for

RELEASE_ARGS = ("--release", "{version}")


def released(name: str, port: int | None, version: str | None = "v1", **run: object) -> str:
    """A service that is told its release on its command line and in its environment."""
    if version is not None:
        run["version"] = version
    return service_yaml(name, port=port, extra_args=RELEASE_ARGS, **run)


def release_at(port: int) -> tuple[str | None, str | None]:
    """(environment, command line) release of what answers on `port`."""
    health = get_json(port)
    return health["release"], health["argv_release"]


def by_name(platform: Platform) -> dict[str, object]:
    return {status.name: status for status in platform.driver().status()}


def test_the_version_reaches_the_program_in_its_arguments_and_environment(platform, free_port) -> None:
    platform.write(released("web", free_port, "2026.01.06-1"))

    platform.driver().up()
    [status] = running(platform, "web", 1)

    assert release_at(free_port) == ("2026.01.06-1", "2026.01.06-1")
    assert status.version == "2026.01.06-1"
    [started] = events(platform, "runtime.started", 1)
    assert started["details"]["version"] == "2026.01.06-1"


def test_a_service_without_a_version_gets_an_empty_one(platform, free_port) -> None:
    platform.write(released("web", free_port, version=None))

    platform.driver().up()
    [status] = running(platform, "web", 1)

    assert release_at(free_port) == ("", "")
    assert status.version is None
    assert platform.driver().releases() == {}


def test_up_runs_the_recorded_release_and_down_keeps_it(platform, free_ports) -> None:
    web, api = free_ports(2)
    platform.write(released("web", web, "v1"), released("api", api, version=None))
    driver = platform.driver()
    driver.up()
    running(platform, "web", 1)
    assert driver.releases() == {"web": "v1"}

    driver.set_release("web", "v2")
    assert driver.releases() == {"web": "v2"}
    assert release_at(web) == ("v1", "v1"), "recording a release does not touch what runs"
    driver.up()
    wait_for(lambda: answers(web) and release_at(web) == ("v2", "v2"), "web to run v2")
    driver.down()
    wait_for(lambda: not answers(web), "web to stop")

    assert json.loads(platform.paths.releases.read_text()) == {"web": "v2"}
    up = platform.cli("up")
    assert up.exit_code == 0, up.stderr
    assert release_at(web) == ("v2", "v2")
    assert release_at(api) == ("", "")
    listed = platform.cli("ps", "--json")
    assert {row["service"]: row["version"] for row in listed.json()} == {"web": "v2", "api": None}
    [recorded] = events(platform, "runtime.release_recorded", 1)
    assert recorded["target"] == "web" and recorded["details"] == {"from": None, "to": "v2"}
    assert recorded["actor"] == "cli:tester"


def test_a_release_is_refused_for_an_unknown_service_or_a_bad_name(platform, free_port) -> None:
    platform.write(released("web", free_port))
    driver = platform.driver()

    with pytest.raises(UsageError, match="unknown service 'wbe'"):
        driver.set_release("wbe", "v2")
    with pytest.raises(UsageError, match="not a release name"):
        driver.set_release("web", "v2 final")
    with pytest.raises(UsageError, match="not a release name"):
        driver.start_track("web", "../v2", 1)
    assert not platform.paths.releases.exists()


def test_a_track_runs_beside_the_service_on_free_ports_and_stops_cleanly(platform, free_port) -> None:
    platform.write(released("web", free_port, "v1", instances=2))
    driver = platform.driver()
    driver.up()
    own = running(platform, "web", 2)

    track = driver.start_track("web", "v2", 2, deadline=20)

    assert [(s.service, s.instance, s.state, s.version) for s in track] == [
        ("web@v2", 0, "running", "v2"), ("web@v2", 1, "running", "v2")]
    assert all(s.base_service == "web" and s.release == "v2" for s in track)
    ports = [s.port for s in track]
    assert len(set(ports)) == 2 and not set(ports) & {s.port for s in own}
    for status in track:
        assert get_json(status.port)["pid"] == status.pid
        assert release_at(status.port) == ("v2", "v2")
        assert get_json(status.port)["greeting"] == f"hello from web.{status.instance}"
    assert [(s.name, s.pid, s.version) for s in running(platform, "web", 2)] == [
        (s.name, s.pid, "v1") for s in own], "the service's own instances are untouched"
    table = platform.cli("ps").stdout
    assert "VERSION" in table.splitlines()[1] and "web@v2" in table
    logs = platform.cli("logs", "web@v2")
    assert logs.exit_code == 0 and f"web@v2.0 stdout listening on {ports[0]}" in logs.stdout
    assert "web@v2" not in platform.cli("logs", "web").stdout

    driver.stop_track("web", "v2")

    assert [s.name for s in driver.status()] == ["web.0", "web.1"]
    assert all(gone(s.pid) for s in track) and not any(answers(port) for port in ports)
    assert release_at(free_port) == ("v1", "v1")
    [stopped] = events(platform, "runtime.stopped", 1)
    assert (stopped["target"], stopped["service"], stopped["details"]["instances"]) == ("web@v2", "web", 2)
    started = [e for e in events(platform, "runtime.started", 4) if e["target"] == "web@v2"]
    assert [(e["service"], e["details"]["version"]) for e in started] == [("web", "v2"), ("web", "v2")]


def test_a_track_is_scaled_and_goes_down_with_its_service(platform, free_port) -> None:
    platform.write(released("web", free_port, "v1"))
    driver = platform.driver()
    driver.up()
    running(platform, "web", 1)
    with pytest.raises(UsageError, match="web@v2 is not running"):
        driver.scale_track("web", "v2", 2)
    driver.start_track("web", "v2", 1, deadline=20)

    scaled = driver.scale_track("web", "v2", 3, deadline=20)

    assert [(s.name, s.state) for s in scaled] == [(f"web@v2.{i}", "running") for i in range(3)]
    [event] = events(platform, "runtime.scaled", 1)
    details = event["details"]
    assert (event["target"], details["from"], details["to"], details["version"]) == ("web@v2", 1, 3, "v2")
    down = platform.cli("down", "web")
    assert down.exit_code == 0 and "web@v2 (3 instances)" in down.stdout
    wait_for(lambda: all(gone(s.pid) for s in scaled), "the track to stop")


def test_a_track_that_cannot_start_is_reported_with_its_exit_within_the_deadline(platform, free_port) -> None:
    platform.write(released("web", free_port, "v1"))
    driver = platform.driver()
    driver.up()
    [own] = running(platform, "web", 1)

    begun = time.monotonic()
    with pytest.raises(RuntimeFailure) as raised:
        driver.start_track("web", "broken-2", 2, deadline=3)
    took = time.monotonic() - begun

    assert 3 <= took < 8, took
    message = str(raised.value)
    for index in (0, 1):
        assert re.search(rf"web@broken-2\.{index} \(broken-2\) is not running after 3s "
                         r"\((starting|backoff)\), last exit: exit 3, \d+ restarts", message), message
    assert message.endswith("web@broken-2 was stopped; see `opsplane logs web@broken-2`"), message
    assert [s.name for s in driver.status()] == ["web.0"], "the track that did not come up is stopped"
    assert get_json(free_port)["pid"] == own.pid
    logged = platform.cli("logs", "web@broken-2").stdout
    assert "release broken-2 cannot start: missing migration" in logged


def test_a_track_that_gives_up_is_reported_at_once(platform, free_port) -> None:
    platform.write(released("web", free_port, "v1", restart="never"))
    driver = platform.driver()
    driver.up()
    running(platform, "web", 1)

    begun = time.monotonic()
    with pytest.raises(RuntimeFailure, match=r"web@broken-3\.0 \(broken-3\) is failed, last exit: exit 3"):
        driver.start_track("web", "broken-3", 1, deadline=30)

    assert time.monotonic() - begun < 10


def test_replacing_an_instance_keeps_its_port_and_changes_only_its_release(platform, free_port) -> None:
    platform.write(released("web", free_port, "v1", instances=3))
    driver = platform.driver()
    driver.up()
    before = {s.instance: s for s in running(platform, "web", 3)}

    replaced = driver.replace_instance("web", 1, "v2", deadline=20)

    assert (replaced.port, replaced.version, replaced.state) == (before[1].port, "v2", "running")
    assert replaced.pid != before[1].pid and gone(before[1].pid)
    assert release_at(before[1].port) == ("v2", "v2")
    after = {s.instance: s for s in running(platform, "web", 3)}
    for index in (0, 2):
        assert (after[index].pid, after[index].version) == (before[index].pid, "v1")
    [event] = events(platform, "runtime.replaced", 1)
    assert event["actor"] == "cli:tester" and event["target"] == "web"
    keys = ("instance", "from", "to", "port", "previous_pid", "pid")
    assert {key: event["details"][key] for key in keys} == {
        "instance": 1, "from": "v1", "to": "v2", "port": before[1].port, "previous_pid": before[1].pid,
        "pid": replaced.pid}

    driver.scale("web", 4)  # mid-roll: a new instance starts with the release the whole group runs
    assert by_name(platform)["web.3"].version == "v1"
    for index in (0, 2, 3):
        driver.replace_instance("web", index, "v2", deadline=20)
    driver.scale("web", 5)
    versions = {s.name: s.version for s in running(platform, "web", 5)}
    assert versions == {f"web.{i}": "v2" for i in range(5)}
    scaled = events(platform, "runtime.scaled", 2)
    assert [e["details"]["version"] for e in scaled] == ["v1", "v2"]


def test_a_replaced_instance_keeps_its_release_when_it_crashes(platform, free_port) -> None:
    platform.write(released("web", free_port, "v1"))
    driver = platform.driver()
    driver.up()
    running(platform, "web", 1)
    first = driver.replace_instance("web", 0, "v2", deadline=20)

    os.kill(first.pid, signal.SIGKILL)
    [again] = wait_for(lambda: [s for s in running(platform, "web", 1) if s.pid != first.pid], "a restart")

    assert (again.version, again.port, again.restarts) == ("v2", free_port, 1)
    assert release_at(free_port) == ("v2", "v2")


def test_a_replacement_that_cannot_start_is_reported(platform, free_port) -> None:
    platform.write(released("web", free_port, "v1", instances=2))
    driver = platform.driver()
    driver.up()
    running(platform, "web", 2)

    with pytest.raises(RuntimeFailure, match=r"web\.1 \(broken-4\) is not running after 2s "
                       r"\((starting|backoff)\), last exit: exit 3, \d+ restarts; see `opsplane logs web`"):
        driver.replace_instance("web", 1, "broken-4", deadline=2)
    with pytest.raises(UsageError, match=r"web has no instance 7 \(its instances: 0, 1\)"):
        driver.replace_instance("web", 7, "v2")

    driver.replace_instance("web", 1, "v1", deadline=20)  # rolled back
    assert {s.name: s.version for s in running(platform, "web", 2)} == {"web.0": "v1", "web.1": "v1"}


def test_a_supervisor_killed_mid_roll_is_followed_by_one_that_keeps_each_release(platform, free_port) -> None:
    platform.write(released("web", free_port, "v1", instances=3))
    driver = platform.driver()
    driver.up()
    running(platform, "web", 3)
    driver.replace_instance("web", 0, "v2", deadline=20)
    driver.start_track("web", "v3", 1, deadline=20)
    before = {s.name: s for s in driver.status()}
    supervisor = driver.supervisor_pid()
    assert supervisor is not None

    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: gone(supervisor), "the supervisor to die")
    up = platform.cli("up")
    assert up.exit_code == 0, up.stderr

    rows = {f"{row['service']}.{row['instance']}": row for row in platform.cli("ps", "--json").json()}
    assert {name: (row["pid"], row["version"]) for name, row in rows.items()} == {
        name: (status.pid, status.version) for name, status in before.items()}
    assert {name: row["version"] for name, row in rows.items()} == {
        "web.0": "v2", "web.1": "v1", "web.2": "v1", "web@v3.0": "v3"}
    os.kill(before["web.0"].pid, signal.SIGKILL)
    wait_for(lambda: answers(free_port) and get_json(free_port)["pid"] != before["web.0"].pid,
             "web.0 to be restarted by the new supervisor")
    assert release_at(free_port) == ("v2", "v2")
    driver.replace_instance("web", 1, "v2", deadline=20)
    driver.replace_instance("web", 2, "v2", deadline=20)
    driver.scale("web", 4)
    assert by_name(platform)["web.3"].version == "v2"


def test_a_service_behind_a_proxy_leaves_its_port_to_the_proxy(platform, free_ports) -> None:
    edge, catalog = free_ports(2)
    platform.write(released("catalog", catalog, "v1", instances=2).replace(
        "    run:", "    proxy: edge\n    run:"),
        extra=f"proxies:\n  edge: {{engine: haproxy, managed: false, port: {edge}}}\n")

    platform.driver().up()
    statuses = running(platform, "catalog", 2)

    assert all(s.port is not None and s.port != catalog for s in statuses)
    assert len({s.port for s in statuses}) == 2 and not answers(catalog)
