"""Failed dashboard sign-ins are limited per client address and recorded as one event per
address and window: against `opsplane serve` as a process (a flood of wrong tokens is answered
429 with Retry-After and leaves one event), and the limiter itself with an injected clock
(back-off, forgiveness, bounded memory)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsplane.clock import ManualClock
from opsplane.drivers.sandbox.ports import free_port
from opsplane.events.summary import summarise
from opsplane.web.signin import OTHERS, SignInLimiter
from tests.support.polling import wait_for
from tests.support.serve import Serve, serving

WINDOW = 2.0  # seconds: short, so the test sees the window end


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    port = free_port()  # serve's own: its one check passes
    inventory = ("platform: {name: shop}\n"
                 f"server: {{sign_in_attempts: 5, sign_in_window: {WINDOW}s}}\n"
                 f"services:\n  api: {{port: {port}, checks: [{{type: tcp}}]}}\n")
    with serving(tmp_path, inventory, port) as serve:
        yield serve


def test_a_flood_of_wrong_tokens_is_refused_and_recorded_once(serve: Serve) -> None:
    token = json.loads(serve.cli("token", "create", "--name", "wall", "--role", "viewer",
                                 "--json"))["token"]
    serve.start()
    with httpx.Client(base_url=serve.url, timeout=10) as browser:
        answers = [browser.post("/ui/login", data={"token": f"ops_guess{n}"}) for n in range(200)]
        assert [a.status_code for a in answers[:5]] == [401] * 5
        assert {a.status_code for a in answers[5:]} == {429}
        retry = int(answers[-1].headers["retry-after"])
        assert 1 <= retry <= WINDOW
        assert "Too many failed sign-ins" in answers[-1].text
        # even the right token waits: it is not looked at while the address is locked out
        assert browser.post("/ui/login", data={"token": token}).status_code == 429

        def recorded() -> list[dict[str, object]]:
            return serve.read("events", "--kind", "ui.login_failed")  # type: ignore[no-any-return]

        [event] = wait_for(recorded, "the failures' one event", timeout=WINDOW * 5)
        assert event["details"]["count"] == 201 and event["details"]["refused"] == 196
        assert event["details"]["client"] == "127.0.0.1"
        assert summarise(event["kind"], event["details"], target=event["target"]) == (
            "201 failed sign-ins to the dashboard from 127.0.0.1 in the last 2 s (unknown or revoked "
            "token); 196 refused by the limit")
        assert "guess" not in json.dumps(event)  # the tokens tried are not recorded

        wait_for(lambda: browser.post("/ui/login", data={"token": token}).status_code == 303,
                 "the address to be let in again", timeout=WINDOW * 3, interval=0.5)
        assert browser.get("/ui/").status_code == 200


def test_failures_not_yet_recorded_are_recorded_when_serve_stops(tmp_path: Path) -> None:
    port = free_port()
    inventory = tmp_path / "opsplane.yaml"  # the default window: a minute
    inventory.write_text("platform: {name: shop}\n"
                         f"services:\n  api: {{port: {port}, checks: [{{type: tcp}}]}}\n")
    serve = Serve(tmp_path, inventory, port=port)
    serve.start()
    try:
        for n in range(3):
            answer = httpx.post(serve.url + "/ui/login", data={"token": f"ops_guess{n}"}, timeout=10)
            assert answer.status_code == 401
        assert serve.read("events", "--kind", "ui.login_failed") == []  # its minute is not over
    finally:
        code, output = serve.terminate()
    assert code == 0 and "Traceback" not in output, output
    [event] = serve.read("events", "--kind", "ui.login_failed")
    assert event["details"]["count"] == 3 and event["details"]["refused"] == 0


def test_each_lockout_in_a_row_lasts_twice_as_long_up_to_the_most() -> None:
    clock = ManualClock()
    limiter = SignInLimiter(clock, attempts=5, window=60, max_lockout=300)
    waits = []
    for _ in range(5):
        for _ in range(5):
            assert limiter.retry_after("10.0.0.9") is None
            limiter.failed("10.0.0.9", "unknown or revoked token")
        waits.append(limiter.retry_after("10.0.0.9"))
        clock.advance(waits[-1] or 0)
    assert waits == [60, 120, 240, 300, 300]
    assert limiter.retry_after("10.0.0.8") is None  # another address is not held back


def test_four_failures_a_minute_are_never_locked_out_and_success_forgives() -> None:
    clock = ManualClock()
    limiter = SignInLimiter(clock, attempts=5, window=60)
    for _ in range(10):
        for _ in range(4):
            limiter.failed("10.0.0.9", "unknown or revoked token")
        assert limiter.retry_after("10.0.0.9") is None
        clock.advance(61)
    for _ in range(4):
        limiter.failed("10.0.0.9", "unknown or revoked token")
    limiter.succeeded("10.0.0.9")
    limiter.failed("10.0.0.9", "unknown or revoked token")
    assert limiter.retry_after("10.0.0.9") is None  # the earlier four were forgiven


def test_failures_are_counted_per_address_and_window_into_one_record() -> None:
    clock = ManualClock()
    limiter = SignInLimiter(clock, attempts=5, window=60)
    for _ in range(12):
        if limiter.retry_after("10.0.0.9") is None:
            limiter.failed("10.0.0.9", "unknown or revoked token")
        clock.advance(1)
    limiter.failed("10.0.0.7", "malformed token")
    assert limiter.due() == []  # the windows have not ended
    clock.advance(60)
    first, second = limiter.due()
    assert (first.client, first.count, first.refused) == ("10.0.0.9", 12, 7)
    assert first.details()["reason"] == "unknown or revoked token"
    assert (second.client, second.count) == ("10.0.0.7", 1)
    assert limiter.due() == [] and limiter.next_due() is None


def test_memory_is_bounded_however_many_addresses_fail() -> None:
    clock = ManualClock()
    limiter = SignInLimiter(clock, attempts=5, window=60, max_clients=100)
    for n in range(1000):
        limiter.failed(f"10.1.{n // 250}.{n % 250}", "unknown or revoked token")
    counts = limiter.due(everything=True)
    assert len(counts) == 101  # a hundred addresses, and one count for all the others
    assert [c for c in counts if c.client == OTHERS][0].count == 900
