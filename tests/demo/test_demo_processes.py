"""However a demo ends (its terminal closed, its output pipe closed, Ctrl-C, or killed and then
`opsplane demo --stop`), nothing it started is left running, and a second demo started
beside a running one refuses to start another set.

What the demo started is read from what it recorded (`pids.json`) and from the runtime's
state file, pid and start time together, before the demo is asked to end."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.support.polling import wait_for

READY = "Try, in another terminal"
START_TIMEOUT = 120.0


@dataclass(frozen=True)
class Started:
    """A process the demo recorded: what it is, its pid and its start time."""

    name: str
    pid: int
    create_time: float

    def running(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            return (abs(process.create_time() - self.create_time) < 0.05
                    and process.status() != psutil.STATUS_ZOMBIE)
        except psutil.NoSuchProcess:
            return False


def demo_argv(base: Path) -> list[str]:
    # the shoppers are left out: they change nothing in how the demo's processes end
    return [sys.executable, "-m", "opsplane", "demo", "--dir", str(base), "--port", "0", "--no-outage",
            "--no-traffic"]


def environ() -> dict[str, str]:
    return {**os.environ, "COLUMNS": "160"}


def what_the_demo_started(base: Path) -> list[Started]:
    """The demo, PostgreSQL, Redis and the S3 store from pids.json; the supervisor and every instance from
    the runtime's state file."""
    own = json.loads((base / "pids.json").read_text())
    found = [Started(name, item["pid"], item["create_time"]) for name, item in own.items()
             if name != "scratch"]
    state = json.loads((base / "run" / "state.json").read_text())
    found.append(Started("supervisor", state["supervisor"]["pid"], state["supervisor"]["create_time"]))
    for name, service in state["services"].items():
        found += [Started(name, item["pid"], item["create_time"]) for item in service["instances"]]
    return found


def scratch_directories(base: Path) -> list[Path]:
    """Directories PostgreSQL needed outside the demo's (its account cannot reach a test's
    temporary directory), as the demo recorded them."""
    return [Path(path) for path in json.loads((base / "pids.json").read_text()).get("scratch", [])]


def still_running(started: list[Started]) -> list[Started]:
    return [process for process in started if process.running()]


def runtime_ps(base: Path) -> subprocess.CompletedProcess[str]:
    env = {**environ(), "OPSPLANE_CONFIG": str(base / "opsplane.yaml"),
           "OPSPLANE_DATABASE_URL": f"sqlite:///{base / 'opsplane.db'}"}
    return subprocess.run([sys.executable, "-m", "opsplane", "ps"], env=env, capture_output=True,
                          text=True, timeout=60)


def assert_nothing_left(base: Path, started: list[Started], scratch: list[Path]) -> None:
    assert {"demo", "postgres", "redis", "supervisor", "gateway", "catalog", "orders", "payments"} <= \
        {p.name for p in started}
    assert still_running(started) == []
    assert [path for path in scratch if path.exists()] == []
    # the runtime agrees: no supervisor, and nothing it started is alive
    ps = runtime_ps(base)
    assert ps.returncode == 1 and "no supervisor is running" in ps.stderr, (ps.stdout, ps.stderr)
    assert not (base / "pids.json").exists()


def kill_leftovers(started: list[Started]) -> None:
    for process in still_running(started):
        os.kill(process.pid, signal.SIGKILL)


class Terminal:
    """A pseudo-terminal the demo runs in as a person's shell would run it: the demo leads
    its own session with the terminal as its controlling terminal. Closing it hangs it up."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            argv, cwd=cwd, env={**environ(), "TERM": "xterm"}, stdin=slave, stdout=slave,
            stderr=slave, start_new_session=True, preexec_fn=_take_terminal)
        os.close(slave)
        self.output = bytearray()
        self._reading = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while self._reading:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.output += chunk

    def text(self) -> str:
        return self.output.decode(errors="replace")

    def close(self) -> None:
        """Close the terminal's window: the demo's session gets SIGHUP from the kernel."""
        if self._reading:
            self._reading = False
            self._reader.join()
            os.close(self.master)


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_closing_the_demos_terminal_stops_everything_it_started(tmp_path: Path) -> None:
    base = tmp_path / "demo"
    terminal = Terminal(demo_argv(base), tmp_path)
    started: list[Started] = []
    try:
        wait_for(lambda: READY in terminal.text() or terminal.process.poll() is not None,
                 "the demo to start", timeout=START_TIMEOUT, interval=0.2)
        assert READY in terminal.text(), terminal.text()
        started, scratch = what_the_demo_started(base), scratch_directories(base)

        terminal.close()

        assert terminal.process.wait(90) == 0
        assert_nothing_left(base, started, scratch)
    finally:
        terminal.close()
        terminal.process.kill()
        kill_leftovers(started)


@pytest.mark.parametrize("then_interrupt", [False, True], ids=["pipe-closed", "pipe-closed-then-ctrl-c"])
def test_a_closed_output_pipe_stops_everything_the_demo_started(tmp_path: Path, then_interrupt: bool) -> None:
    """`opsplane demo | tee log`, and tee goes away: the demo notices its reader is gone even
    while it prints nothing, and a Ctrl-C right after (its "stopping" message then meets the
    closed pipe) ends it the same way."""
    base = tmp_path / "demo"
    demo = subprocess.Popen(demo_argv(base), cwd=tmp_path, env=environ(), stdout=subprocess.PIPE,  # noqa: S603
                            stderr=subprocess.STDOUT, text=True)
    started: list[Started] = []
    try:
        assert demo.stdout is not None
        seen = []
        while not any(READY in line for line in seen):
            line = demo.stdout.readline()
            assert line, "".join(seen)
            seen.append(line)
        started, scratch = what_the_demo_started(base), scratch_directories(base)

        demo.stdout.close()
        if then_interrupt:
            demo.send_signal(signal.SIGINT)

        assert demo.wait(90) == 0
        assert_nothing_left(base, started, scratch)
    finally:
        demo.kill()
        kill_leftovers(started)


def test_stop_ends_what_a_killed_demo_left_and_a_second_demo_refuses_to_start_beside_it(
        tmp_path: Path) -> None:
    base = tmp_path / "demo"
    log = tmp_path / "demo.log"
    with log.open("w") as output:
        demo = subprocess.Popen(demo_argv(base), cwd=tmp_path, env=environ(), stdout=output,  # noqa: S603
                                stderr=subprocess.STDOUT)
    started: list[Started] = []
    try:
        wait_for(lambda: READY in log.read_text() or demo.poll() is not None, "the demo to start",
                 timeout=START_TIMEOUT, interval=0.2)
        assert READY in log.read_text(), log.read_text()
        started, scratch = what_the_demo_started(base), scratch_directories(base)
        demo.kill()
        demo.wait(10)
        recorded = (base / "pids.json").read_text()

        second = subprocess.run(demo_argv(base), cwd=tmp_path, env=environ(), capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 3, (second.stdout, second.stderr)
        assert f"a demo is already running from {base}" in second.stderr
        assert f"opsplane demo --stop --dir {base}" in second.stderr
        assert "Traceback" not in second.stderr
        assert (base / "pids.json").read_text() == recorded  # nothing new was started
        assert [p for p in started if p.name != "demo"] == still_running(started)

        stop = subprocess.run([sys.executable, "-m", "opsplane", "demo", "--stop", "--dir", str(base)],
                              cwd=tmp_path, env=environ(), capture_output=True, text=True, timeout=120)

        assert stop.returncode == 0, (stop.stdout, stop.stderr)
        said = stop.stdout.split("stopped: ", 1)[1]
        expected = {"postgres": "PostgreSQL", "redis": "Redis", "s3": "S3 store (moto)",
                    "pgbouncer": "PgBouncer", "supervisor": "runtime supervisor"}
        for process in started:
            if process.name != "demo":
                assert f"{expected.get(process.name, process.name)} (pid {process.pid})" in said, stop.stdout
        assert "demo (pid" not in said  # it was dead already: --stop does not claim it
        assert_nothing_left(base, started, scratch)

        again = subprocess.run([sys.executable, "-m", "opsplane", "demo", "--stop", "--dir", str(base)],
                               cwd=tmp_path, env=environ(), capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and f"no demo was running from {base}" in again.stdout
    finally:
        demo.kill()
        kill_leftovers(started)


def test_stop_never_signals_a_process_whose_pid_was_reused(tmp_path: Path) -> None:
    """A recorded pid that now names a process started at another time is left alone."""
    base = tmp_path / "demo"
    base.mkdir()
    stranger = subprocess.Popen(["sleep", "60"])  # noqa: S607
    leftover = subprocess.Popen(["sleep", "60"])  # noqa: S607
    try:
        earlier = psutil.Process(stranger.pid).create_time() - 3600
        (base / "pids.json").write_text(json.dumps({
            "postgres": {"pid": stranger.pid, "create_time": earlier},
            "redis": {"pid": leftover.pid, "create_time": psutil.Process(leftover.pid).create_time()},
        }))

        stop = subprocess.run([sys.executable, "-m", "opsplane", "demo", "--stop", "--dir", str(base)],
                              cwd=tmp_path, env=environ(), capture_output=True, text=True, timeout=60)

        assert stop.returncode == 0, (stop.stdout, stop.stderr)
        assert stop.stdout.strip().endswith(f"stopped: Redis (pid {leftover.pid})")
        assert leftover.wait(10) == -signal.SIGTERM
        assert stranger.poll() is None
    finally:
        stranger.kill()
        leftover.kill()
        stranger.wait()
        leftover.wait()
