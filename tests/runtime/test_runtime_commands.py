"""`opsplane up/ps/stats/logs/scale/restart/down` through the command line: JSON field by
field, exit codes, and the errors a person gets for a wrong name or number."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from datetime import datetime

import pytest

from tests.runtime.platforms import Platform, get_json, gone, service_yaml
from tests.support.polling import wait_for


def started(platform: Platform, *services: str, db: bool = False) -> None:
    platform.write(*services, extra="databases:\n  orders-db:\n    port: 5999\n" if db else "")
    result = platform.cli("up")
    assert result.exit_code == 0, result.stderr


def test_up_then_ps_json_describes_each_instance(platform, free_ports) -> None:
    web, api = free_ports(2)
    started(platform, service_yaml("web", port=web, instances=2), service_yaml("api", port=api))

    def described() -> list | None:  # type: ignore[type-arg]
        result = platform.cli("ps", "--json")
        assert result.exit_code == 0, result.stderr
        found = result.json()
        # a process read in its first moments on a busy machine may show a few KiB only
        return found if found and found[0]["rss_bytes"] > 1_000_000 else None

    rows = wait_for(described, "web's memory read from its process", timeout=10)
    assert [(r["service"], r["instance"]) for r in rows] == [("web", 0), ("web", 1), ("api", 0)]
    first = rows[0]
    assert set(first) == {"service", "instance", "pid", "port", "state", "started_at", "uptime", "restarts",
                          "rss_bytes", "cpu_percent", "last_exit", "version"}
    assert first["version"] is None  # the inventory gives web no release
    assert first["port"] == web and first["state"] == "running" and first["restarts"] == 0
    assert first["pid"] == get_json(web)["pid"] and first["last_exit"] is None
    assert datetime.fromisoformat(first["started_at"]).tzinfo is not None
    assert 0 <= first["uptime"] < 60 and first["rss_bytes"] > 1_000_000
    assert rows[1]["port"] not in (web, api) and rows[1]["pid"] == get_json(rows[1]["port"])["pid"]
    assert rows[2]["port"] == api


def test_up_prints_the_instances_and_ps_prints_a_table(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port))

    up = platform.cli("up")
    ps = platform.cli("ps")

    assert up.exit_code == 0 and "web" in up.stdout and "running" in up.stdout
    header = ps.stdout.splitlines()[1]
    for column in ("SERVICE", "PID", "PORT", "STATE", "UPTIME", "RESTARTS", "LAST EXIT"):
        assert column in header
    assert str(free_port) in ps.stdout


def test_up_exits_2_naming_an_instance_that_does_not_run(platform) -> None:
    platform.write("  broken:\n    run: {argv: [" + repr(sys.executable) + ", -c, 'raise SystemExit(4)'], "
                   "restart: never}")

    result = platform.cli("up")

    assert result.exit_code == 2
    assert "broken.0 is failed, last exit: exit 4; see `opsplane logs broken`" in result.stderr


def test_stats_json_reports_cpu_and_memory(platform, free_port) -> None:
    started(platform, service_yaml("web", port=free_port))

    def measured() -> list:
        rows = platform.cli("stats", "--json").json()
        return rows if rows[0]["cpu_percent"] is not None else []

    [row] = wait_for(measured, "a CPU sample", timeout=8)
    assert set(row) == {"service", "instance", "pid", "state", "cpu_percent", "rss_bytes"}
    assert row["service"] == "web" and row["instance"] == 0 and row["state"] == "running"
    assert 0 <= row["cpu_percent"] < 200 and row["rss_bytes"] > 1_000_000
    table = platform.cli("stats").stdout
    assert "CPU %" in table and "MiB" in table


def test_unknown_service_suggests_the_close_name_and_exits_3(platform, free_port) -> None:
    platform.write(service_yaml("catalog", port=free_port))

    for command in (["up", "catalgo"], ["logs", "catalgo"], ["restart", "catalgo"],
                    ["scale", "catalgo", "2"]):
        result = platform.cli(*command)
        assert result.exit_code == 3, command
        assert "unknown service 'catalgo'; did you mean 'catalog'?" in result.stderr


def test_a_component_without_run_is_refused_with_exit_3(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port), extra="databases:\n  orders-db:\n    port: 5999\n")

    result = platform.cli("up", "orders-db")

    assert result.exit_code == 3 and "'orders-db' has no run section" in result.stderr


def test_an_inventory_without_any_run_section_says_what_to_add(platform) -> None:
    platform.write("  web:\n    port: 8000")

    result = platform.cli("up")

    assert result.exit_code == 3 and "no component of the inventory has a run section" in result.stderr


@pytest.mark.parametrize("count", ["0", "101", "two", "1.5"])
def test_scale_refuses_an_invalid_number_with_exit_3(platform, free_port, count) -> None:
    platform.write(service_yaml("web", port=free_port))

    result = platform.cli("scale", "web", count)

    assert result.exit_code == 3 and f"cannot scale web to '{count}'" in result.stderr
    assert not platform.paths.state.exists()


def test_ps_without_a_supervisor_says_so_and_exits_1(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port))

    result = platform.cli("ps", "--json")

    assert result.exit_code == 1 and result.stdout == ""
    assert "no supervisor is running" in result.stderr and "opsplane up" in result.stderr
    assert platform.cli("down").stdout.strip() == "nothing was running"


def test_scale_restart_and_down_report_what_they_did(platform, free_port) -> None:
    started(platform, service_yaml("web", port=free_port))
    [before] = platform.cli("ps", "--json").json()

    scaled = platform.cli("scale", "web", "2")
    restarted = platform.cli("restart", "web")
    after = platform.cli("ps", "--json").json()
    down = platform.cli("down")

    assert scaled.exit_code == 0 and scaled.stdout.startswith(f"scaled web from 1 to 2; ports {free_port}, ")
    assert restarted.exit_code == 0
    assert f"restarted web.0: pid {before['pid']} -> {after[0]['pid']} (running)" in restarted.stdout
    assert after[0]["pid"] != before["pid"] and len(after) == 2
    assert down.stdout.strip() == "stopped web (2 instances)"
    assert all(gone(row["pid"]) for row in after)
    actors = {e["kind"]: e["actor"] for e in platform.events()}
    assert actors["runtime.scaled"] == actors["runtime.restarted"] == actors["runtime.stopped"]
    assert actors["runtime.stopped"].startswith("cli:")


def say(port: int, text: str, path: str = "/say") -> None:
    from urllib.parse import quote

    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?text={quote(text)}", timeout=2).read()  # noqa: S310


def test_logs_since_grep_tail_and_json(platform, free_port) -> None:
    started(platform, service_yaml("web", port=free_port))
    log_file = platform.paths.logs / "web.0.log"
    for n in range(5):  # one at a time, so each line is read (and stamped) apart from the others
        say(free_port, f"order {n} placed")
        wait_for(lambda n=n: f"order {n} placed\n" in log_file.read_text(), f"line {n}")
    say(free_port, "cache miss for order 3", path="/warn")
    logs = lambda *args: platform.cli("logs", "web", *args)  # noqa: E731
    wait_for(lambda: "cache miss" in logs().stdout, "the lines in the log")

    everything = logs("--json").stdout.splitlines()
    import json

    lines = [json.loads(line) for line in everything]
    placed = [line for line in lines if line["text"].endswith("placed")]
    assert [line["text"] for line in placed] == [f"order {n} placed" for n in range(5)]
    assert placed[0]["service"] == "web" and placed[0]["instance"] == 0 and placed[0]["stream"] == "stdout"
    assert [line for line in lines if line["text"] == "cache miss for order 3"][0]["stream"] == "stderr"

    grep = logs("--grep", r"order [24] placed").stdout.splitlines()
    assert [line.split(" ", 3)[3] for line in grep] == ["order 2 placed", "order 4 placed"]
    assert grep[0].split(" ")[1:3] == ["web.0", "stdout"] and grep[0][:4].isdigit()

    tail = logs("--tail", "2", "--grep", "placed$").stdout.splitlines()
    assert [line.split(" ", 3)[3] for line in tail] == ["order 3 placed", "order 4 placed"]

    third = placed[3]["ts"]
    since = [json.loads(line)["text"] for line in logs("--since", third, "--grep", "placed$", "--json")
             .stdout.splitlines()]
    assert since == ["order 3 placed", "order 4 placed"]
    assert logs("--since", "1h", "--grep", "placed$").stdout.count("placed") == 5
    bad = logs("--grep", "(")
    assert bad.exit_code == 3 and "invalid --grep pattern" in bad.stderr


def test_logs_follow_prints_new_lines_as_they_come(platform, free_port) -> None:
    started(platform, service_yaml("web", port=free_port))
    follower = subprocess.Popen(
        [sys.executable, "-m", "opsplane", "-c", str(platform.inventory_path), "logs", "web", "-f",
         "--tail", "0", "--grep", "^live line"],
        env=platform.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        seen = []
        for n in range(100):
            say(free_port, f"live line {n}")
            line = _readline(follower, timeout=0.2)
            if line:
                seen.append(line)
                break
        say(free_port, f"live line {n + 1}")
        seen.append(follower.stdout.readline())
        assert seen[0].split(" ", 3)[1:] == ["web.0", "stdout", seen[0].split(" ", 3)[3]]
        assert "live line" in seen[0] and "live line" in seen[1]
        first = int(seen[0].split()[-1])
        assert int(seen[1].split()[-1]) == first + 1, "lines follow in order"
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(10)
    assert follower.returncode == 0, follower.stderr.read() if follower.stderr else ""


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if selector.select(timeout):
            return process.stdout.readline()
    return ""


def test_logs_errors_counts_by_service_with_top_messages(platform, free_ports) -> None:
    web, api = free_ports(2)
    started(platform, service_yaml("web", port=web), service_yaml("api", port=api))
    for _ in range(3):
        get_json(web, "/fail")
    get_json(web, "/timeout")
    say(api, "all fine")
    wait_for(lambda: platform.cli("logs", "web", "--grep", "ERROR payment").stdout, "the error lines")

    result = platform.cli("logs", "--errors", "--json")

    assert result.exit_code == 1
    report = result.json()
    web_report, api_report = report["services"]
    assert report["total"] == web_report["errors"] == 10
    assert web_report["kinds"] == {"traceback": 3, "http_5xx": 3, "exception": 3, "level": 1}
    assert (web_report["top"][0]["count"], web_report["top"][0]["message"]) == (
        3, '<ip> - - [<time>] "GET /fail HTTP/1.1" 500 -')
    assert api_report == {"service": "api", "errors": 0, "kinds": {}, "top": []}
    since = datetime.fromisoformat(report["since"])
    assert 23.9 * 3600 < (datetime.now(since.tzinfo) - since).total_seconds() < 24.1 * 3600
    quiet = platform.cli("logs", "api", "--errors", "--json")
    assert quiet.exit_code == 0 and quiet.json()["total"] == 0
    table = platform.cli("logs", "--errors", "--since", "1h").stdout
    assert "web: top messages" in table and "ValueError: payment provider answered" in table


def test_logs_without_a_service_or_with_errors_and_follow_is_a_usage_error(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port))

    assert platform.cli("logs").exit_code == 3
    both = platform.cli("logs", "--errors", "-f")
    assert both.exit_code == 3 and "--errors cannot be combined" in both.stderr


def test_logs_are_readable_after_down(platform, free_port) -> None:
    started(platform, service_yaml("web", port=free_port))
    say(free_port, "last words")
    wait_for(lambda: "last words" in platform.cli("logs", "web").stdout, "the line")

    platform.cli("down")

    assert "last words" in platform.cli("logs", "web").stdout
    assert not os.path.exists(platform.paths.socket)


def test_a_busy_instance_log_is_rotated_and_still_read_in_order(platform, free_port) -> None:
    started(platform, service_yaml("web", port=free_port, logs={"max_bytes": 4096, "backups": 2}))

    get_json(free_port, "/bulk?n=400")
    log_dir = platform.paths.logs
    wait_for(lambda: "bulk line 00399" in platform.cli("logs", "web", "--tail", "5").stdout, "the last line")

    assert sorted(p.name for p in log_dir.glob("web.0.log*")) == ["web.0.log", "web.0.log.1", "web.0.log.2"]
    assert all(p.stat().st_size < 4096 + 200 for p in log_dir.glob("web.0.log*"))
    shown = platform.cli("logs", "web", "--grep", "^bulk").stdout.splitlines()
    numbers = [int(line.split()[-2]) for line in shown]
    assert numbers == list(range(numbers[0], 400)) and numbers[0] > 0, "oldest rotated away, rest in order"
    last = platform.cli("logs", "web", "--grep", "^bulk", "--tail", "3").stdout.splitlines()
    assert [int(line.split()[-2]) for line in last] == [397, 398, 399]
