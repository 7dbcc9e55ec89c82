"""Commands at the same moment: what runs at the end is what the last command the supervisor
accepted asked for; an `up` that was accepted is never undone by a `down` before it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from opsplane.drivers.runtime.base import RuntimeNotRunning
from opsplane.drivers.runtime.process import ProcessRuntime
from tests.runtime.platforms import Platform, answers, running, service_yaml
from tests.support.polling import wait_for

ROUNDS = 12


Command = tuple[float, Callable[[ProcessRuntime], None]]


def at_once(platform: Platform, *commands: Command) -> list[BaseException]:
    """Run each command with a driver of its own, released together by a barrier and then
    after its delay (seconds); their errors."""
    barrier = threading.Barrier(len(commands))
    errors: list[BaseException] = []

    def run(delay: float, command: Callable[[ProcessRuntime], None]) -> None:
        driver = platform.driver()
        barrier.wait()
        time.sleep(delay)
        try:
            command(driver)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=item) for item in commands]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def web_runs(platform: Platform, port: int) -> bool:
    try:
        found = [s for s in platform.driver().status() if s.service == "web"]
    except RuntimeNotRunning:
        return False
    return bool(found) and all(s.state == "running" for s in found) and answers(port)


def last_accepted(platform: Platform, port: int, seen: int) -> tuple[str, int, bool]:
    """The kind of the last start or stop a command asked for after the first `seen` (the
    supervisor's own stops left out; "none" without any), how many there are, and whether web
    runs now."""
    asked = [e["kind"] for e in platform.events()
             if e["kind"] in ("runtime.started", "runtime.stopped") and e["actor"] == "cli:tester"]
    return (asked[-1] if len(asked) > seen else "none"), len(asked), web_runs(platform, port)


def settled(platform: Platform, port: int, seen: int, what: str) -> tuple[str, int]:
    """Once the state agrees with the last accepted command, and the events and the state stay
    the same for a moment (the supervisor writes its events from a thread): that kind, and the
    number of commands' starts and stops so far."""

    def steady() -> tuple[str, int] | None:
        first = last_accepted(platform, port, seen)
        time.sleep(0.3)
        kind, count, runs = last_accepted(platform, port, seen)
        agrees = kind != "none" and runs == (kind == "runtime.started")
        return (kind, count) if agrees and first == (kind, count, runs) else None

    try:
        result: tuple[str, int] = wait_for(steady, what, timeout=15)
    except AssertionError:
        kind, count, runs = last_accepted(platform, port, seen)
        raise AssertionError(f"{what}: the last accepted command was {kind} (of {count}), "
                             f"yet web {'runs' if runs else 'does not run'}") from None
    return result


def test_down_and_up_at_once_end_as_the_last_accepted_command_asked(platform, free_port) -> None:
    platform.write(service_yaml("web", port=free_port))
    seen = 0
    outcomes = []
    for round_ in range(ROUNDS):
        if round_ % 2 == 0:  # from a running service; otherwise from what the last round left
            platform.driver().up()
            running(platform, "web", 1)
            seen = settled(platform, free_port, 0, "web running before the round")[1]

        lead = ((round_ % 5) - 2) * 0.02  # from the up 40 ms ahead to the down 40 ms ahead
        errors = at_once(platform, (max(lead, 0), lambda driver: driver.down()),
                         (max(-lead, 0), lambda driver: driver.up()))

        assert errors == [], f"round {round_}: {errors!r}"
        kind, seen = settled(platform, free_port, seen,
                             f"round {round_}: the state the last accepted command asked for")
        outcomes.append(kind)
    undone = [e for e in platform.events("runtime.stopped") if e["actor"] != "cli:tester"]
    assert undone == [], "nothing was stopped that no command asked to stop"
    print("last accepted per round:", outcomes)
