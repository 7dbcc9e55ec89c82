"""What every benchmark needs: free ports, child processes that always die, /proc readings,
plain HTTP GETs, histogram quantiles and a description of the machine.

Each child runs in its own session (process group), so stopping it also stops anything it
forked, and an interrupted benchmark leaves nothing behind: `Children` kills every group it
started when its block ends, however it ends.
"""

from __future__ import annotations

import math
import os
import platform
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


# --- ports ---------------------------------------------------------------------------------


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports the kernel says are free right now on `host`."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((host, 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


# --- child processes -----------------------------------------------------------------------


class ChildFailed(RuntimeError):
    """A child process did not start, or did not stop the way it should."""


class Child:
    """One child process in its own process group, its output in `log`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log = log
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ChildFailed(f"{self.name} was never started")
        return self.process.pid

    def start(self) -> Child:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - argv built by the benchmark
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise ChildFailed, with the end of its log, if the child has exited."""
        if self.process is not None and self.process.poll() is not None:
            raise ChildFailed(f"{self.name} exited with status {self.process.returncode}; "
                              f"end of {self.log}:\n{self.log_tail()}")

    def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM to the process itself; its exit status (None if it had to be killed) and
        how long it took to exit."""
        if self.process is None:
            return None, 0.0
        if self.process.poll() is not None:
            return self.process.returncode, 0.0
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - started
        self.kill()
        return code, took

    def kill(self) -> None:
        """SIGKILL to the whole process group; never raises."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class Children:
    """Every child started in a `with Children() as children:` block is stopped at its end:
    SIGTERM first (so nginx reaps its workers), then SIGKILL to its whole process group."""

    def __init__(self) -> None:
        self._started: list[Child] = []

    def start(self, child: Child) -> Child:
        self._started.append(child)
        return child.start()

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *_: object) -> None:
        for child in reversed(self._started):
            child.terminate(5.0)


def raise_on_sigterm() -> None:
    """Turn SIGTERM (and SIGHUP) into SystemExit, so `finally` blocks stop the children."""

    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGHUP, leave)


# --- /proc ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuTimes:
    """CPU time a process (all its threads) has used, in seconds."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def cpu_times(pid: int, proc: Path = PROC) -> CpuTimes:
    """utime and stime of `pid` from /proc/PID/stat."""
    stat = (proc / str(pid) / "stat").read_text()
    # The command name may contain spaces and parentheses; fields resume after the last ")".
    fields = stat[stat.rindex(")") + 2:].split()
    return CpuTimes(int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS)


def cpu_seconds(pid: int, proc: Path = PROC) -> float:
    """User plus system CPU time of `pid` (all its threads), in seconds."""
    return cpu_times(pid, proc).total


def status_kib(pid: int, field: str, proc: Path = PROC) -> int:
    """A `kB` field of /proc/PID/status (VmHWM, VmRSS, ...), in KiB."""
    for line in (proc / str(pid) / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(f"/proc/{pid}/status has no {field}")


# --- HTTP ----------------------------------------------------------------------------------


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of GET `url`; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def wait_for_http(url: str, child: Child, *, timeout: float, status: int = 200) -> float:
    """Poll `url` until it answers `status`; seconds it took. Raises ChildFailed if `child`
    exits first or `timeout` passes."""
    started = time.monotonic()
    while True:
        child.check_alive()
        if http_get(url, timeout=2.0)[0] == status:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise ChildFailed(f"{child.name} did not answer {url} with {status} within "
                              f"{timeout:g} s; end of {child.log}:\n{child.log_tail()}")
        time.sleep(0.1)


# --- histograms ----------------------------------------------------------------------------


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative `(upper bound, count)` buckets, sorted by bound and
    ending with +Inf, interpolated linearly inside its bucket as Prometheus's
    histogram_quantile does; None when there are no observations. Falling in the +Inf
    bucket gives the largest finite bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            if inside <= 0:
                return bound
            return lower + (bound - lower) * (rank - below) / inside
        lower, below = bound, cumulative
    return lower


def share_at_most(bound: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Fraction of observations at or below `bound`, which must be a bucket bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    for upper, cumulative in buckets:
        if upper == bound:
            return cumulative / buckets[-1][1]
    raise ValueError(f"{bound} is not a bucket bound; bounds are {[b for b, _ in buckets]}")


# --- the machine ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str

    def describe(self) -> str:
        return (f"{self.cpus} CPU ({self.cpu_model}), {self.memory_gib:.0f} GiB, "
                f"Linux {self.kernel}, Python {self.python}")


def machine(proc: Path = PROC) -> Machine:
    """The machine the benchmark runs on, as read from /proc and the interpreter."""
    model = "unknown"
    for line in (proc / "cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in (proc / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return Machine(cpus=len(os.sched_getaffinity(0)), cpu_model=model,
                   memory_gib=mem_kib / 2**20, kernel=platform.release(),
                   python=platform.python_version())


def program_version(argv: Sequence[str], pattern: str) -> str:
    """The first match of `pattern`'s group 1 in the output of `argv`, or "unknown"."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    found = re.search(pattern, done.stdout + done.stderr)
    return found.group(1) if found else "unknown"


def quantile(values: Iterable[float], q: float) -> float | None:
    """The q-quantile (0..1) of raw `values`, nearest rank; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]
