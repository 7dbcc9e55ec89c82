"""The `gamedays:` section: scenarios shipped for the inventory's components, the inventory's own
replacing them, and mistakes reported at their place in the file before anything runs."""

from __future__ import annotations

import pytest

from opsplane.config.loader import loads
from opsplane.errors import ConfigError
from opsplane.gameday.catalog import scenarios
from opsplane.gameday.models import parse_size

SHOP = """\
platform: {name: shop}
services:
  payments:
    port: 8203
    run: {argv: [python, -m, shop, payments], secret_env: {SHOP_ADMIN_TOKEN: env:TOKEN}}
  catalog: {port: 8201}
databases:
  main: {port: 5432}
hosts:
  localhost: {checks: [{type: host}]}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        loads(text, "opsplane.yaml")
    return [str(problem) for problem in caught.value.problems]


def test_scenarios_are_shipped_for_what_the_inventory_runs_and_holds() -> None:
    found = scenarios(loads(SHOP, "opsplane.yaml"))
    assert sorted(found) == ["fill-disk-localhost", "kill-payments", "payments-errors", "payments-latency",
                             "stop-main"]  # catalog has no run section: nothing kills it
    assert found["stop-main"].severity == "P0" and found["kill-payments"].expect == ["detect", "page"]


def test_an_inventorys_scenario_replaces_the_shipped_one_of_its_name() -> None:
    text = SHOP + ("gamedays:\n  scenarios:\n"
                   "    kill-payments: {kind: kill, target: payments, max_duration: 1m,\n"
                   "                    expect: [detect, page, recover], targets: {page: 2m}}\n")
    found = scenarios(loads(text, "opsplane.yaml"))["kill-payments"]
    assert (found.max_duration, found.target_of("page")) == (60.0, 120.0)
    assert found.expect == ["detect", "page", "recover"]


@pytest.mark.parametrize(("section", "expected"), [
    ("  scenarios:\n    x: {kind: stop-cache, target: main}",
     "opsplane.yaml:13:35: gamedays.scenarios.x.target: stop-cache is about one of the inventory's caches; "
     "'main' is not one (there: none)"),
    ("  scenarios:\n    x: {kind: kill, target: payments, ratio: 0.5}",
     "opsplane.yaml:13:8: gamedays.scenarios.x: ratio applies to kind errors only, not kill"),
    ("  schedule: {cron: '0 10 1 1,4,7,10 *', scenario: kill-orders}",
     "opsplane.yaml:12:51: gamedays.schedule.scenario: unknown scenario 'kill-orders'; expected one of "
     "fill-disk-localhost, kill-payments, payments-errors, payments-latency, stop-main"),
    ("  schedule: {cron: '0 10 1 1,4,7', scenario: kill-payments}",
     "expected 5 fields"),
])
def test_mistakes_are_reported_at_their_place(section: str, expected: str) -> None:
    [problem] = _problems(SHOP + "gamedays:\n" + section + "\n")
    assert expected in problem, problem


def test_sizes_are_read_as_people_write_them() -> None:
    assert parse_size("512MiB") == 512 * 2**20
    assert parse_size("1.5 GB") == 1_500_000_000
    with pytest.raises(ValueError, match="such as 512MiB"):
        parse_size("lots")


def test_the_quarterly_slot_is_played_within_an_hour_of_its_time_and_not_later() -> None:
    from datetime import UTC, datetime, timedelta

    from opsplane.gameday.models import GamedaySchedule
    from opsplane.gameday.worker import due_slot, next_slot

    schedule = GamedaySchedule(cron="0 10 1 1,4,7,10 *", scenario="kill-payments", time_zone="Europe/Berlin")
    slot = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)  # 10:00 in Berlin, summer time
    assert due_slot(schedule, slot + timedelta(minutes=10)) == slot
    assert due_slot(schedule, slot + timedelta(hours=2)) is None  # serve was down then: not now
    assert due_slot(schedule, slot - timedelta(minutes=1)) is None  # January's is long past
    assert next_slot(schedule, slot) == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
