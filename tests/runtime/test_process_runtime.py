"""The process runtime with real processes: services answer on their ports, crashes are
restarted with back-off and recorded, scaling, restarts, and nothing left after `down`, even
when the supervisor itself was killed."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from opsplane.drivers.runtime.base import RuntimeNotRunning
from opsplane.drivers.runtime.processes import session_members
from opsplane.errors import UsageError
from tests.runtime.platforms import SECRET, answers, events, get_json, gone, running, service_yaml
from tests.support.polling import wait_for


def test_up_starts_instances_that_answer_with_their_placeholders_and_secret(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port, secret_env={"SHOP_TOKEN": "env:SHOP_TOKEN"}))

    platform.driver().up()
    [status] = running(platform, "web", 1)

    health = get_json(free_port)
    assert status.port == free_port and status.pid == health["pid"] and status.instance == 0
    assert health["greeting"] == "hello from web.0" and health["instance"] == "0"
    assert health["secret_length"] == len(SECRET)
    assert health["database_url_visible"] is False
    assert health["cwd"] == str(platform.root)
    assert status.restarts == 0 and status.last_exit is None and status.uptime is not None
    [started] = wait_for(lambda: platform.events("runtime.started"), "the start event")
    assert started["actor"] == "cli:tester" and started["target"] == "web"
    assert started["details"] == {"instance": 0, "pid": status.pid, "port": free_port}
    written = [_text_of(p) for p in platform.paths.root.rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert any(written) and not any(SECRET in text for text in written), "the secret leaked to the state dir"
    assert SECRET not in str(platform.events())


def _text_of(path) -> str:
    """A file's text, or nothing when it went away meanwhile (the state file's temporary copy)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def test_killed_instance_is_restarted_after_a_growing_backoff(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port, backoff={"initial": "300ms", "factor": 2}))
    platform.driver().up()
    [first] = running(platform, "web", 1)

    os.kill(first.pid, signal.SIGKILL)
    [second] = wait_for(lambda: [s for s in running(platform, "web", 1) if s.pid != first.pid],
                        "a new process")
    os.kill(second.pid, signal.SIGKILL)
    [third] = wait_for(
        lambda: [s for s in running(platform, "web", 1) if s.pid not in (first.pid, second.pid)],
        "another new process")

    assert third.restarts == 2 and third.last_exit == "signal 9" and third.port == free_port
    assert get_json(free_port)["pid"] == third.pid
    exited = events(platform, "runtime.exited", 2)
    restarted = platform.events("runtime.restarted")
    assert [e["details"]["pid"] for e in exited] == [first.pid, second.pid]
    assert all(e["outcome"] == "failure" and e["details"]["exit"] == "signal 9" for e in exited)
    assert [e["details"]["then"] for e in exited] == ["restart in 0.3s", "restart in 0.6s"]
    assert [(e["details"]["previous_pid"], e["details"]["pid"]) for e in restarted] == [
        (first.pid, second.pid), (second.pid, third.pid)]
    assert all(e["actor"] == "system:runtime" for e in exited + restarted)
    waits = [_seconds(r["ts"]) - _seconds(e["ts"]) for e, r in zip(exited, restarted, strict=True)]
    assert waits[0] >= 0.29 and waits[1] >= 0.59, waits


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_scale_to_three_distinct_live_ports_and_back_to_one(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port))
    driver = platform.driver()
    driver.up()
    running(platform, "web", 1)

    driver.scale("web", 3)
    three = running(platform, "web", 3)

    ports = [s.port for s in three]
    assert ports[0] == free_port and len(set(ports)) == 3
    answers_by_port = {port: get_json(port) for port in ports}
    assert [answers_by_port[s.port]["pid"] for s in three] == [s.pid for s in three]
    assert [answers_by_port[s.port]["greeting"] for s in three] == [f"hello from web.{i}" for i in range(3)]

    driver.scale("web", 1)
    [left] = running(platform, "web", 1)

    assert left.pid == three[0].pid, "scaling down keeps instance 0"
    assert all(gone(s.pid) for s in three[1:]) and not any(answers(s.port) for s in three[1:])
    scaled = events(platform, "runtime.scaled", 2)
    assert [(e["details"]["from"], e["details"]["to"]) for e in scaled] == [(1, 3), (3, 1)]
    assert scaled[0]["details"]["ports"] == ports and scaled[0]["actor"] == "cli:tester"


def test_scale_refuses_a_count_outside_one_to_a_hundred(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port))

    for count in (0, 101, -1):
        with pytest.raises(UsageError, match=f"cannot scale web to {count}"):
            platform.driver().scale("web", count)
    assert not platform.paths.socket.exists(), "nothing was started"


def test_restart_replaces_every_instance_on_the_same_ports(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port, instances=2))
    driver = platform.driver()
    driver.up()
    before = running(platform, "web", 2)

    driver.restart("web")
    after = running(platform, "web", 2)

    assert [s.port for s in after] == [s.port for s in before]
    assert all(a.pid != b.pid and gone(b.pid) for a, b in zip(after, before, strict=True))
    assert get_json(free_port)["pid"] == after[0].pid
    restarted = events(platform, "runtime.restarted", 2)
    assert {(e["details"]["previous_pid"], e["details"]["pid"]) for e in restarted} == {
        (b.pid, a.pid) for a, b in zip(after, before, strict=True)}
    assert all(e["actor"] == "cli:tester" and e["details"]["reason"] == "requested" for e in restarted)


def test_up_again_leaves_running_instances_alone_and_recreates_changed_ones(platform, free_ports) -> None:
    web, api = free_ports(2)
    platform.write(service_yaml("web", port=web), service_yaml("api", port=api))
    platform.driver().up()
    [web_before] = running(platform, "web", 1)
    [api_before] = running(platform, "api", 1)

    platform.write(service_yaml("web", port=web),
                   service_yaml("api", port=api, env={"GREETING": "changed", "INSTANCE": "{instance}"}))
    platform.driver().up()
    [web_after] = running(platform, "web", 1)
    [api_after] = running(platform, "api", 1)

    assert web_after.pid == web_before.pid
    assert api_after.pid != api_before.pid and get_json(api)["greeting"] == "changed"


def test_down_stops_every_process_including_what_an_instance_started(platform, free_ports) -> None:
    web, api = free_ports(2)
    platform.write(service_yaml("web", port=web, instances=2),
                   service_yaml("api", port=api, extra_args=("--child",)))
    platform.driver().up()
    statuses = running(platform, "web", 2) + running(platform, "api", 1)
    child = get_json(api)["child"]
    recorded = platform.recorded()
    assert {identity.pid for identity in recorded} >= {s.pid for s in statuses}
    assert len(recorded) == 4, "three instances and the supervisor"

    platform.driver().down()

    assert all(gone(identity.pid) for identity in recorded) and gone(child)
    assert not platform.paths.socket.exists() and not platform.paths.state.exists()
    stopped = wait_for(lambda: platform.events("runtime.stopped"), "stop events")
    assert {e["target"]: e["details"]["instances"] for e in stopped} == {"web": 2, "api": 1}
    with pytest.raises(RuntimeNotRunning) as raised:
        platform.driver().status()
    assert raised.value.exit_code == 1 and "no supervisor is running" in str(raised.value)


def test_down_of_one_service_keeps_the_others(platform, free_ports) -> None:
    web, api = free_ports(2)
    platform.write(service_yaml("web", port=web), service_yaml("api", port=api))
    driver = platform.driver()
    driver.up()
    [web_status] = running(platform, "web", 1)
    running(platform, "api", 1)

    driver.down(["web"])

    assert gone(web_status.pid) and [s.service for s in driver.status()] == ["api"]
    assert answers(api)


def test_stop_escalates_to_sigkill_after_stop_timeout(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port, extra_args=("--ignore-term",), stop_timeout="500ms"))
    platform.driver().up()
    [status] = running(platform, "web", 1)

    begun = time.monotonic()
    platform.driver().down()

    assert gone(status.pid) and time.monotonic() - begun >= 0.5
    [stopped] = wait_for(lambda: platform.events("runtime.stopped"), "the stop event")
    assert stopped["details"]["killed"] == 1


def test_supervisor_killed_then_down_still_stops_the_children(platform, free_ports) -> None:
    web, api = free_ports(2)
    platform.write(service_yaml("web", port=web, instances=2), service_yaml("api", port=api))
    platform.driver().up()
    statuses = running(platform, "web", 2) + running(platform, "api", 1)
    supervisor = platform.driver().supervisor_pid()
    assert supervisor is not None

    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: gone(supervisor), "the supervisor to die")
    with pytest.raises(RuntimeNotRunning) as raised:
        platform.driver().status()
    assert raised.value.exit_code == 2
    assert sorted(o.pid for o in raised.value.orphans) == sorted(s.pid for s in statuses)
    assert "opsplane down" in str(raised.value)

    platform.driver().down()

    assert all(gone(s.pid) for s in statuses) and not platform.paths.state.exists()
    stopped = wait_for(lambda: platform.events("runtime.stopped"), "stop events")
    assert {e["target"] for e in stopped} == {"web", "api"}
    assert all(e["details"]["reason"] == "supervisor not running" for e in stopped)


def test_up_after_the_supervisor_died_adopts_what_runs_and_restarts_what_ended(platform, free_ports) -> None:
    web, api = free_ports(2)
    platform.write(service_yaml("web", port=web), service_yaml("api", port=api))
    platform.driver().up()
    [web_before] = running(platform, "web", 1)
    [api_before] = running(platform, "api", 1)
    supervisor = platform.driver().supervisor_pid()
    assert supervisor is not None
    os.kill(supervisor, signal.SIGKILL)
    wait_for(lambda: gone(supervisor), "the supervisor to die")
    os.kill(api_before.pid, signal.SIGKILL)  # ends while nothing supervises it
    wait_for(lambda: gone(api_before.pid), "api to die")

    platform.driver().up()
    [web_after] = running(platform, "web", 1)
    [api_after] = wait_for(lambda: [s for s in running(platform, "api", 1) if s.pid != api_before.pid],
                           "api restarted")

    assert web_after.pid == web_before.pid and get_json(web)["pid"] == web_before.pid
    assert get_json(api)["pid"] == api_after.pid
    assert (api_after.restarts, api_after.last_exit) == (1, "exit status unknown")
    [adopted] = events(platform, "runtime.adopted", 1)
    assert adopted["target"] == "web" and adopted["details"]["pids"] == [web_before.pid]
    [exited] = events(platform, "runtime.exited", 1)
    assert exited["target"] == "api" and exited["details"]["pid"] == api_before.pid
    assert exited["details"]["then"] == "restart in 0.2s"

    platform.driver().restart("web")  # an adopted process is stopped as one of its own would be
    [web_restarted] = running(platform, "web", 1)
    assert gone(web_before.pid) and get_json(web)["pid"] == web_restarted.pid
    platform.driver().down()
    assert gone(web_restarted.pid) and gone(api_after.pid)
    stopped = events(platform, "runtime.stopped", 2)
    assert all(e["details"]["killed"] == 0 and e["actor"] == "cli:tester" for e in stopped)


def test_crash_loop_stops_at_max_restarts_and_clean_exit_is_not_restarted(platform) -> None:
    crash = [sys.executable, "-c", "import sys; print('cannot connect'); sys.exit(3)"]
    clean = [sys.executable, "-c", "print('done')"]
    platform.write(
        "  crashy:\n    run: " + _flow({"argv": crash, "backoff": {"initial": "50ms"}, "max_restarts": 2}),
        "  oneshot:\n    run: " + _flow({"argv": clean}),
        "  missing:\n    run: " + _flow({"argv": ["/nonexistent/program"], "restart": "never"}),
    )
    driver = platform.driver()
    driver.up()

    def settled() -> dict:
        found = {s.service: s for s in driver.status()}
        return found if all(s.state in ("failed", "stopped") for s in found.values()) else {}

    found = wait_for(settled, "every service to settle")
    crashy, oneshot, missing = found["crashy"], found["oneshot"], found["missing"]
    assert (crashy.state, crashy.restarts, crashy.last_exit) == ("failed", 2, "exit 3")
    assert (oneshot.state, oneshot.restarts, oneshot.last_exit) == ("stopped", 0, "exit 0")
    assert missing.state == "failed"
    assert missing.last_exit.startswith("cannot start: No such file or directory: /nonexistent/program")
    [failed] = wait_for(lambda: platform.events("runtime.failed"), "the failed event")
    assert failed["target"] == "crashy" and "more than max_restarts (2)" in failed["details"]["reason"]


def _flow(value: object) -> str:
    import json

    return json.dumps(value)


def test_session_members_of_a_reused_pid_are_never_touched() -> None:
    from opsplane.drivers.runtime.processes import ProcessIdentity

    me = ProcessIdentity(os.getpid(), 12345.0)  # same pid, another create time: a reused pid

    assert session_members(me) == []


def test_sigterm_to_the_supervisor_stops_every_instance_first(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port, instances=2))
    platform.driver().up()
    statuses = running(platform, "web", 2)
    supervisor = platform.driver().supervisor_pid()
    assert supervisor is not None

    os.kill(supervisor, signal.SIGTERM)

    wait_for(lambda: gone(supervisor), "the supervisor to exit")
    assert all(gone(s.pid) for s in statuses)
    assert not platform.paths.state.exists() and not platform.paths.socket.exists()
    [stopped] = wait_for(lambda: platform.events("runtime.stopped"), "the stop event")
    assert stopped["details"]["reason"] == "supervisor stopping" and stopped["actor"] == "system:runtime"


def test_two_ups_at_once_start_one_supervisor_and_one_instance(platform, free_port) -> None:
    from concurrent.futures import ThreadPoolExecutor

    platform.write(service_yaml("web", port=free_port))

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(platform.driver().up) for _ in range(2)]:
            done.result()
    [status] = running(platform, "web", 1)

    ours = [p for p in psutil_processes() if "opsplane.drivers.runtime.supervisor" in p
            and str(platform.paths.root) in p]
    assert len(ours) == 1
    assert get_json(free_port)["pid"] == status.pid
    wait_for(lambda: platform.events("runtime.started"), "the start event")
    assert len(platform.events("runtime.started")) == 1


def psutil_processes() -> list[str]:
    """Command lines of the live processes of the machine."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] != psutil.STATUS_ZOMBIE and process.info["cmdline"]:
            found.append(" ".join(process.info["cmdline"]))
    return found


def test_up_after_a_settings_change_keeps_the_count_set_by_scale(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port))
    driver = platform.driver()
    driver.up()
    running(platform, "web", 1)
    driver.scale("web", 3)
    before = running(platform, "web", 3)

    platform.write(service_yaml("web", port=free_port, env={"GREETING": "changed", "INSTANCE": "{instance}"}))
    platform.driver().up()
    after = running(platform, "web", 3)

    assert [s.instance for s in after] == [0, 1, 2]
    assert not {s.pid for s in after} & {s.pid for s in before}, "every instance runs the new settings"
    assert [get_json(s.port)["greeting"] for s in after] == ["changed"] * 3
    [recreated] = wait_for(lambda: [e for e in platform.events("runtime.stopped")
                                    if e["details"].get("reason") == "settings changed"], "the stop event")
    assert recreated["details"]["instances"] == 3
