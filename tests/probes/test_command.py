"""The command probe: exit codes to states, output to reasons, and no orphans on timeout."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil

from opsplane.health.models import State
from opsplane.health.targets import command_line
from tests.support.factories import command_target
from tests.support.probing import probe_once

PY = sys.executable


def python(code: str) -> list[str]:
    return [PY, "-c", code]


async def test_exit_0_is_ok_with_the_first_line_of_output() -> None:
    result = await probe_once(command_target(python("print('\\n  queue depth 3\\nmore')")))
    assert (result.state, result.reason) == (State.OK, "exit 0: queue depth 3")
    assert result.metrics["exit_code"] == 0


async def test_silent_success_says_how_long_it_took() -> None:
    result = await probe_once(command_target([PY, "-c", "pass"]))
    assert result.state is State.OK
    assert result.reason.startswith("exit 0 in ")


async def test_a_warning_exit_code_is_warning() -> None:
    code = "import sys; print('backlog high'); sys.exit(1)"
    result = await probe_once(command_target(python(code), warning_exit_codes=[1]))
    assert (result.state, result.reason) == (
        State.WARNING, f"exit 1: backlog high — {command_line(python(code))}")


async def test_any_other_exit_code_is_critical_and_prefers_stderr() -> None:
    code = "import sys; print('checking'); print('disk full', file=sys.stderr); sys.exit(2)"
    result = await probe_once(command_target(python(code), warning_exit_codes=[1]))
    assert (result.state, result.reason) == (
        State.CRITICAL, f"exit 2: disk full — {command_line(python(code))}")


async def test_the_reason_keeps_at_most_200_characters_of_output() -> None:
    argv = python("import sys; print('x' * 500); sys.exit(3)")
    result = await probe_once(command_target(argv))
    assert result.reason == "exit 3: " + "x" * 199 + f"… — {command_line(argv)}"


async def test_env_is_merged_onto_the_environment_and_cwd_is_used(tmp_path: Path) -> None:
    code = "import os; print(os.environ['CHECK_MODE'], os.environ['BASE'], os.getcwd())"
    target = command_target(python(code), env={"CHECK_MODE": "deep"}, cwd=str(tmp_path))
    result = await probe_once(target, environ={"BASE": "from-base", "PATH": "/usr/bin:/bin"})
    assert result.reason == f"exit 0: deep from-base {tmp_path}"


async def test_a_missing_program_is_critical() -> None:
    result = await probe_once(command_target(["/nonexistent/check_disk", "-w", "80"]))
    assert (result.state, result.reason) == (State.CRITICAL,
                                             "command not found — /nonexistent/check_disk -w 80")


async def test_a_missing_working_directory_is_named(tmp_path: Path) -> None:
    result = await probe_once(command_target([PY, "-c", "pass"], cwd=str(tmp_path / "gone")))
    assert result.reason == (f"working directory not found: {tmp_path / 'gone'} "
                             f"— {PY} -c pass")


async def test_a_program_killed_by_a_signal_says_so() -> None:
    argv = python("import os; os.kill(os.getpid(), 9)")
    result = await probe_once(command_target(argv))
    assert (result.state, result.reason) == (State.CRITICAL,
                                             f"killed by SIGKILL — {command_line(argv)}")


async def test_a_timeout_kills_the_program_and_its_children(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    code = (
        "import subprocess, os, time, sys\n"
        "child = subprocess.Popen(['sleep', '30'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(30)\n"
    )
    started = time.perf_counter()
    result = await probe_once(command_target(python(code), timeout=1.0))
    elapsed = time.perf_counter() - started
    assert result.state is State.CRITICAL
    assert result.reason == f"no answer within 1 s — {command_line(python(code))}"
    assert elapsed < 1.5
    program, grandchild = (int(pid) for pid in pids.read_text().split())
    for pid in (program, grandchild):
        assert _gone(pid), f"pid {pid} survived the probe's timeout"


def _gone(pid: int) -> bool:
    # An orphaned grandchild is reaped by PID 1, which in some containers never does it:
    # a zombie has stopped running, which is what matters.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def test_a_long_command_is_shown_on_one_line_and_cut() -> None:
    shown = command_line(["/usr/lib/nagios/plugins/check_disk", "-w", "10%", "-c", "5%", "-p",
                          "/var/lib/postgresql", "-p", "/srv/backups"])
    assert shown == "/usr/lib/nagios/plugins/check_disk -w 10% -c 5% -p /var/lib…"
    assert len(shown) == 60
    assert command_line(["python", "-c", "a = 1\nprint(a)"]) == "python -c 'a = 1 print(a)'"
