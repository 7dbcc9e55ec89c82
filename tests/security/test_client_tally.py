"""The gateway's requests per client address: logged when the window closes, the busiest
first, refusals counted, the number of addresses told apart bounded."""

from __future__ import annotations

from shop.telemetry import ClientTally


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_window_logs_its_total_and_busiest_clients_at_the_first_request_after_it() -> None:
    clock, lines = Clock(), []
    tally = ClientTally(60, lines.append, top=2, clock=clock)
    for status in (200, 200, 401, 404, 403, 500):
        tally.record("203.0.113.9", status)
    tally.record("10.0.0.2", 200)
    tally.record("10.0.0.3", 200)
    clock.now = 59.9
    tally.record("10.0.0.3", 200)
    assert lines == []  # the window is still open
    clock.now = 60.0
    tally.record("10.0.0.2", 404)  # the first request of the next window
    assert lines == ["traffic window=60s total=9 addresses=3",
                     "traffic client=203.0.113.9 requests=6 denied=3",
                     "traffic client=10.0.0.3 requests=2 denied=0"]
    clock.now = 200.0
    tally.record(None, 200)
    assert lines[3:] == ["traffic window=60s total=1 addresses=1",
                         "traffic client=10.0.0.2 requests=1 denied=1"]


def test_addresses_beyond_the_limit_count_as_other() -> None:
    clock, lines = Clock(), []
    tally = ClientTally(1, lines.append, top=5, limit=3, clock=clock)
    for index in range(10):
        tally.record(f"198.51.100.{index}", 200)
    clock.now = 1.0
    tally.flush()
    assert lines[0] == "traffic window=1s total=10 addresses=4"
    assert "traffic client=other requests=7 denied=0" in lines
