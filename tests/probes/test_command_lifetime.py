"""What a command check leaves behind: its run always ends at the timeout, however much the
program prints; its output never fills the prober's memory; nothing it started outlives it,
not even a process that detached with `setsid`."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest

from opsplane.health.models import ProbeResult, State
from tests.support.factories import command_target
from tests.support.probing import probe_once

MiB = 1024 * 1024


def _processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if marker in (process.info["cmdline"] or []):
            found.append(process)
    return found


def _running(processes: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for process in processes:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique argument for the test's programs; whatever still carries it afterwards is
    killed, so a failing test leaves nothing behind either."""
    value = f"opsplane-{uuid.uuid4().hex[:12]}"
    yield value
    for process in _processes_with(value):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def _probe_in_own_thread(argv: list[str], timeout: float, deadline: float) -> ProbeResult | None:
    """One run in a thread with its own event loop; None when it has not returned by
    `deadline` seconds (a probe that hangs would otherwise hang the test)."""
    box: list[ProbeResult] = []
    thread = threading.Thread(
        target=lambda: box.append(asyncio.run(probe_once(command_target(argv, timeout=timeout)))),
        daemon=True)
    thread.start()
    thread.join(deadline)
    return box[0] if box else None


def test_a_program_that_prints_forever_ends_at_its_timeout_every_time(marker: str) -> None:
    argv = ["yes", marker]
    for attempt in range(10):
        started = time.perf_counter()
        result = _probe_in_own_thread(argv, timeout=1.0, deadline=5.0)
        assert result is not None, f"run {attempt + 1} of 10 had not returned after 5 s"
        assert (result.state, result.reason) == (State.CRITICAL,
                                                 f"no answer within 1 s — yes {marker}")
        assert time.perf_counter() - started < 3.0
        assert not _running(_processes_with(marker)), "yes outlived the timeout"


async def test_a_program_printing_300_mb_does_not_fill_the_probers_memory() -> None:
    code = ("import sys\nblock = b'x' * 1048575 + b'\\n'\n"
            "for _ in range(300):\n    sys.stdout.buffer.write(block)\n")
    me = psutil.Process()
    baseline = me.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = await probe_once(command_target([sys.executable, "-c", code], timeout=60.0))
    finally:
        done.set()
        sampler.join()
    assert result.state is State.OK, result.reason
    assert result.reason == "exit 0: " + "x" * 199 + "…"
    assert peak[0] - baseline < 64 * MiB, f"the prober grew by {(peak[0] - baseline) / MiB:.0f} MiB"


@pytest.mark.parametrize("ending", ["success", "timeout"])
@pytest.mark.parametrize("detached", ["sleep {m} >/dev/null 2>&1 &",
                                      "setsid sleep {m} >/dev/null 2>&1 &",
                                      "sleep {m} &"],
                         ids=["background", "setsid", "holding-stdout"])
async def test_nothing_the_program_started_outlives_its_run(
    detached: str, ending: str, marker: str
) -> None:
    # sleep's argument is a number only we use, so the survivor can be told from any other.
    seconds = f"32.{int(uuid.uuid4().int % 10**9):09d}"
    script = detached.format(m=seconds) + " echo started" + ("; sleep 30" if ending == "timeout" else "")
    started = time.perf_counter()
    result = await probe_once(command_target(["sh", "-c", script, marker], timeout=2.0))
    elapsed = time.perf_counter() - started
    try:
        if ending == "success":
            assert (result.state, result.reason) == (State.OK, "exit 0: started")
            assert elapsed < 1.5
        else:
            assert result.state is State.CRITICAL
            assert result.reason.startswith("no answer within 2 s")
            assert elapsed < 3.5
        assert not _running(_processes_with(seconds)), f"sleep {seconds} outlived the check"
    finally:
        for process in _processes_with(seconds):
            process.kill()
