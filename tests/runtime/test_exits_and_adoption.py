"""An instance's end is seen when its main process ends, whatever it left running, and its output
does not depend on the supervisor: a supervisor killed with SIGKILL leaves every instance serving
and logging, and the next one adopts them and restarts them when they exit."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from opsplane.drivers.runtime.base import RuntimeNotRunning
from tests.runtime.platforms import Platform, events, get_json, gone, running, service_yaml
from tests.support.polling import wait_for


def test_an_instance_whose_main_process_dies_while_its_child_lives_is_restarted(platform, free_port) -> None:
    # a prefork server's master: the worker it forked holds the output it inherited
    platform.write(service_yaml("web", port=free_port, extra_args=("--child",)))
    platform.driver().up()
    [first] = running(platform, "web", 1)
    child = get_json(free_port)["child"]

    os.kill(first.pid, signal.SIGKILL)
    [second] = wait_for(lambda: [s for s in running(platform, "web", 1) if s.pid != first.pid],
                        "a new process", timeout=10)

    assert (second.restarts, second.last_exit) == (1, "signal 9")
    assert get_json(free_port)["pid"] == second.pid
    assert gone(child), "what the dead process left of its session was stopped"
    [exited] = events(platform, "runtime.exited", 1)
    assert (exited["details"]["pid"], exited["details"]["exit"]) == (first.pid, "signal 9")
    begun = time.monotonic()
    platform.driver().down()
    assert time.monotonic() - begun < 5
    [stopped] = events(platform, "runtime.stopped", 1)
    assert stopped["actor"] == "cli:tester" and "reason" not in stopped["details"]


def ticks(platform: Platform, name: str, stream: str) -> int:
    """The highest number a chattering instance has logged on `stream` so far (-1 for none)."""
    path = platform.paths.logs / f"{name}.log"
    word = "tick" if stream == "stdout" else "tock"
    found = re.findall(rf"^\S+Z {stream} {word} (\d+)$", _text(path), re.MULTILINE)
    return max((int(n) for n in found), default=-1)


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def still_logging(platform: Platform, names: list[str], since: dict[str, int]) -> None:
    """Every instance logs at least a second's worth of lines on both streams after `since`."""
    for stream in ("stdout", "stderr"):
        for name in names:
            wait_for(lambda name=name, stream=stream: ticks(platform, name, stream) >= since[name] + 20,
                     f"{name} to go on logging on {stream}", timeout=10)


def say(port: int, text: str) -> None:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/say?text={quote(text)}", timeout=2).read()  # noqa: S310


def test_a_killed_supervisor_leaves_every_instance_serving_and_logging_and_the_next_adopts_them(
        platform, free_ports) -> None:
    gateway, catalog, orders = free_ports(3)
    chatter = ("--chatter",)
    platform.write(service_yaml("gateway", port=gateway, extra_args=chatter),
                   service_yaml("catalog", port=catalog, extra_args=chatter, instances=2),
                   service_yaml("orders", port=orders, extra_args=chatter))
    assert platform.cli("up").exit_code == 0
    before = [s for name, count in (("gateway", 1), ("catalog", 2), ("orders", 1))
              for s in running(platform, name, count)]
    names = [s.name for s in before]
    events(platform, "runtime.started", 4)  # written by the supervisor's thread: before it is killed
    supervisor = platform.driver().supervisor_pid()
    assert supervisor is not None

    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: gone(supervisor), "the supervisor to die")
    at_kill = {name: ticks(platform, name, "stdout") for name in names}

    still_logging(platform, names, at_kill)
    for status in before:
        assert get_json(status.port)["pid"] == status.pid, f"{status.name} serves"
        say(status.port, f"{status.name} heard without a supervisor")
    for name in names:
        wait_for(lambda name=name: f"stdout {name} heard without a supervisor\n" in _text(
            platform.paths.logs / f"{name}.log"), f"{name}'s answer in its log")
    with pytest.raises(RuntimeNotRunning) as raised:
        platform.driver().status()
    assert raised.value.exit_code == 2
    assert sorted(o.pid for o in raised.value.orphans) == sorted(s.pid for s in before)

    up = platform.cli("up")
    assert up.exit_code == 0, up.stderr
    listed = platform.cli("ps", "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = {f"{row['service']}.{row['instance']}": row for row in listed.json()}
    assert {name: row["pid"] for name, row in rows.items()} == {s.name: s.pid for s in before}
    assert all(row["state"] == "running" for row in rows.values())
    assert platform.driver().supervisor_pid() not in (None, supervisor)
    adopted = events(platform, "runtime.adopted", 3)
    assert {e["target"]: e["details"]["instances"] for e in adopted} == {"gateway": 1, "catalog": 2,
                                                                          "orders": 1}
    assert sorted(pid for e in adopted for pid in e["details"]["pids"]) == sorted(s.pid for s in before)
    assert all(e["details"]["previous_supervisor"] == supervisor for e in adopted)
    assert len(platform.events("runtime.started")) == 4 and platform.events("runtime.stopped") == []
    still_logging(platform, names, {name: ticks(platform, name, "stdout") for name in names})

    victim = rows["catalog.1"]
    os.kill(victim["pid"], signal.SIGKILL)
    [back] = wait_for(lambda: [s for s in running(platform, "catalog", 2)
                               if s.instance == 1 and s.pid != victim["pid"]], "catalog.1 restarted")
    assert back.port == victim["port"] and get_json(back.port)["pid"] == back.pid
    assert back.restarts == 1 and back.last_exit == "exit status unknown"
    [exited] = events(platform, "runtime.exited", 1)
    assert exited["target"] == "catalog" and exited["details"]["pid"] == victim["pid"]
    assert exited["outcome"] == "failure" and exited["details"]["exit"] == "exit status unknown"
    [restarted] = events(platform, "runtime.restarted", 1)
    assert (restarted["details"]["previous_pid"], restarted["details"]["pid"]) == (victim["pid"], back.pid)
    assert [s.pid for s in running(platform, "gateway", 1)] == [rows["gateway.0"]["pid"]]
