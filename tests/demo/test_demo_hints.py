"""What the demo prints and what the README's tour says to type work as written: the demo's
"Try, in another terminal" lines, pasted into a fresh shell that has no `opsplane` on PATH,
run against the demo, and so do the README's step 7 commands after the first of them; the
page they cause shows in the demo's own output, and the printed stop command ends it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.polling import wait_for

README = Path(__file__).resolve().parents[2] / "README.md"
TRY = "Try, in another terminal"
STOP = re.compile(r"Ctrl-C here, or `(?P<command>opsplane demo --stop [^`]+)` in another terminal")


class RunningDemo:
    """`opsplane demo` with its output (stdout and stderr) read as it comes."""

    def __init__(self, tmp_path: Path) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            [sys.executable, "-m", "opsplane", "demo", "--dir", str(tmp_path / "demo"), "--port", "0",
             "--no-outage", "--no-traffic"],
            cwd=tmp_path, env={**os.environ, "COLUMNS": "200"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)


def fresh_shell(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """`script` in a new bash with nothing of this test's environment: no virtualenv on PATH,
    no OPSPLANE_* variables, started in a directory of its own."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "COLUMNS": "200"}
    return subprocess.run(["bash", "--noprofile", "--norc", "-c", script], cwd=home, env=env,  # noqa: S607
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def demo(tmp_path: Path) -> RunningDemo:
    running = RunningDemo(tmp_path)
    try:
        wait_for(lambda: STOP.search(running.text()) or running.process.poll() is not None,
                 "the demo's hints", timeout=120, interval=0.2)
        assert STOP.search(running.text()), running.text()
        yield running  # type: ignore[misc]
    finally:
        if running.process.poll() is None:
            running.process.terminate()
            running.process.wait(90)


def printed_hints(demo: RunningDemo) -> list[str]:
    lines = demo.lines
    start = next(i for i, line in enumerate(lines) if line.startswith(TRY))
    end = next(i for i, line in enumerate(lines) if STOP.search(line))
    return [line.strip() for line in lines[start + 1:end] if line.strip()]


def test_the_printed_commands_work_in_a_fresh_shell_and_a_page_shows_in_the_demo(
        demo: RunningDemo, tmp_path: Path) -> None:
    setup, *commands = printed_hints(demo)
    assert setup.startswith("export PATH=")
    assert "opsplane oncall now" in "\n".join(commands)

    for command in commands:
        ran = fresh_shell(tmp_path, f"{setup}\n{command}")
        said = ran.stdout + ran.stderr
        # reads exit 1 or 2 when they find something wrong (a busy host): never 3, never 127
        assert ran.returncode in (0, 1, 2), (command, said)
        assert "command not found" not in said and "Traceback" not in said, (command, said)

    def run(command: str) -> subprocess.CompletedProcess[str]:
        ran = fresh_shell(tmp_path, f"{setup}\n{command}")
        assert ran.returncode == 0, (command, ran.stdout, ran.stderr)
        return ran

    [oncall] = json.loads(run("opsplane oncall now --json").stdout)["schedules"]
    holders = {layer["layer"]: layer["display_name"] for layer in oncall["layers"]}
    assert sorted(holders.values()) == ["Ana Silva", "Ben Okafor"], oncall

    opened_id = "1"
    for written in readme_step_7():
        # the README's commands name incident 1; on a busy machine the demo's host check may
        # have opened one first, so a person uses the number `incident open` printed
        command = re.sub(r"(opsplane incident \w+) 1\b", rf"\g<1> {opened_id}", written)
        ran = run(command)
        if command.startswith("opsplane notify test console"):
            assert "delivered to console" in ran.stdout and "[P2] Test notification" in ran.stderr
        opened = re.search(r"Opened INC-(\d+) \(P1\) on payments", ran.stdout)
        if opened:
            opened_id = opened[1]
            # the on-call's page, in the demo's terminal, before anyone acknowledges
            page = f"[P1] payments: INC-{opened[1]}: charges failing"
            wait_for(lambda page=page: page in demo.text(), "the page in the demo's output", timeout=30,
                     interval=0.2)
            after = demo.text().split(page, 1)[1]
            assert f"for {holders['primary']} (primary of shop)" in after
            assert f"Acknowledge: opsplane incident ack {opened[1]}" in after
    assert f"INC-{opened_id}" in demo.text()
    # The person paged hears that the incident is settled: the acknowledgement, or only the
    # resolution when both came before paging's next cycle (docs/incidents.md).
    try:
        wait_for(lambda: f"[P1 RESOLVED] payments: INC-{opened_id} resolved" in demo.text(),
                 "the resolution in the demo's output", timeout=30, interval=0.2)
    except AssertionError as missing:
        raise AssertionError(f"{missing}; the demo said:\n{demo.text()[-6000:]}") from None

    stop = STOP.search(demo.text())
    assert stop is not None
    stopped = fresh_shell(tmp_path, f"{setup}\n{stop['command']}")
    assert stopped.returncode == 0, (stopped.stdout, stopped.stderr)
    assert demo.process.wait(90) == 0


def readme_step_7() -> list[str]:
    """The commands of the README's "Respond" step, as a person would paste them."""
    text = README.read_text()
    step = text[text.index("**7. Respond.**"):]
    block = step[step.index("```sh\n") + 6:]
    commands = [line for line in block[:block.index("```")].splitlines() if line.startswith("opsplane ")]
    assert len(commands) >= 6 and any(c.startswith("opsplane incident open ") for c in commands)
    return commands
