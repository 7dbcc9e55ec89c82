"""Dependency-aware status: own state, impact and the root cause named."""

from __future__ import annotations

import pytest

from opsplane.config.loader import loads
from opsplane.health.models import ProbeResult, State, Threshold, worst
from opsplane.health.status import assess, overall

INVENTORY = """
platform: {name: shop}
services:
  nginx: {port: 80, depends_on: [backend], checks: [{type: http}]}
  backend: {port: 8000, depends_on: [postgres-main, redis], checks: [{type: http, path: /health/}]}
  search: {port: 8004, depends_on: [redis], checks: [{type: http}]}
  docs: {port: 9000}
databases:
  postgres-main: {port: 5432, checks: [{type: postgres}]}
caches:
  redis: {port: 6379, checks: [{type: redis}, {type: tcp}]}
"""


def results(**states: tuple[State, str]) -> dict[str, ProbeResult]:
    defaults = {
        "nginx/http": (State.OK, "HTTP 200 in 3 ms"),
        "backend/http": (State.OK, "HTTP 200 in 5 ms"),
        "search/http": (State.OK, "HTTP 200 in 4 ms"),
        "postgres-main/postgres": (State.OK, "ready"),
        "redis/redis": (State.OK, "PONG"),
        "redis/tcp": (State.OK, "port open"),
    }
    defaults.update({k.replace("__", "/").replace("_", "-"): v for k, v in states.items()})
    return {k: ProbeResult(s, r) for k, (s, r) in defaults.items()}


@pytest.fixture
def inventory():
    return loads(INVENTORY, "opsplane.yaml")


def by_name(statuses):
    return {s.name: s for s in statuses}


def test_all_ok_means_nothing_impacted(inventory) -> None:
    statuses = by_name(assess(inventory, results()))
    assert all(s.state is State.OK for s in statuses.values() if s.checked)
    assert not any(s.impacted for s in statuses.values())
    assert overall(list(statuses.values())) is State.OK


def test_database_down_names_the_root_cause_for_its_dependents(inventory) -> None:
    statuses = by_name(assess(inventory, results(
        postgres_main__postgres=(State.CRITICAL, "refuses connections"),
        backend__http=(State.CRITICAL, "HTTP 503 in 4 ms"),
    )))
    backend = statuses["backend"]
    assert backend.impacted
    assert backend.headline == ("backend CRITICAL: http: HTTP 503 in 4 ms; "
                                "depends on postgres-main, which refuses connections")
    # two levels up, the chain is spelled out
    assert statuses["nginx"].root_causes[0].path == ("backend", "postgres-main")
    assert statuses["nginx"].root_causes[0].component == "postgres-main"
    # the database itself is not impacted: it is the cause
    assert not statuses["postgres-main"].impacted
    assert statuses["postgres-main"].reason == "postgres: refuses connections"
    # search does not depend on postgres
    assert not statuses["search"].impacted


def test_healthy_dependent_of_a_down_dependency_is_flagged_as_impacted(inventory) -> None:
    statuses = by_name(assess(inventory, results(
        redis__redis=(State.CRITICAL, "no answer within 2 s"),
    )))
    search = statuses["search"]
    assert search.state is State.OK and search.impacted
    assert search.headline == ("search OK but impacted: depends on redis, "
                               "which is down: no answer within 2 s")


def test_a_component_failing_on_its_own_says_so_before_its_failing_dependency(inventory) -> None:
    statuses = by_name(assess(inventory, results(
        redis__tcp=(State.CRITICAL, "refuses connections — 127.0.0.1:6379"),
        search__http=(State.CRITICAL, "HTTP 503 in 2 ms — http://127.0.0.1:8004/"),
    )))
    search = statuses["search"]
    assert search.state is State.CRITICAL and search.impacted
    assert search.own_reason == "http: HTTP 503 in 2 ms — http://127.0.0.1:8004/"
    assert search.reason == ("http: HTTP 503 in 2 ms — http://127.0.0.1:8004/; depends on redis, "
                             "which refuses connections — 127.0.0.1:6379")
    assert search.headline == f"search CRITICAL: {search.reason}"


def test_an_unknown_own_check_is_shown_with_the_failing_dependency(inventory) -> None:
    statuses = by_name(assess(inventory, results(
        postgres_main__postgres=(State.CRITICAL, "refuses connections"),
        backend__http=(State.UNKNOWN, "secret API_TOKEN is not set"),
    )))
    assert statuses["backend"].reason == ("http: secret API_TOKEN is not set; "
                                          "depends on postgres-main, which refuses connections")


def test_warning_dependency_does_not_impact(inventory) -> None:
    statuses = by_name(assess(inventory, results(redis__redis=(State.WARNING, "memory 80%"))))
    assert not statuses["search"].impacted
    assert statuses["redis"].state is State.WARNING
    assert overall(list(statuses.values())) is State.WARNING


def test_component_state_is_the_worst_of_its_checks(inventory) -> None:
    statuses = by_name(assess(inventory, results(
        redis__redis=(State.WARNING, "memory 80%"), redis__tcp=(State.CRITICAL, "refuses connections"),
    )))
    assert statuses["redis"].state is State.CRITICAL
    assert statuses["redis"].reason == "tcp: refuses connections"


def test_component_without_checks_is_not_counted(inventory) -> None:
    statuses = by_name(assess(inventory, results()))
    docs = statuses["docs"]
    assert not docs.checked and docs.reason == "no checks defined"
    assert overall(list(statuses.values())) is State.OK


def test_two_failing_dependencies_are_both_named(inventory) -> None:
    statuses = by_name(assess(inventory, results(
        postgres_main__postgres=(State.CRITICAL, "refuses connections"),
        redis__redis=(State.CRITICAL, "refuses connections"),
        backend__http=(State.CRITICAL, "HTTP 500"),
    )))
    assert {c.component for c in statuses["backend"].root_causes} == {"postgres-main", "redis"}


@pytest.mark.parametrize("states, expected", [
    ([], State.OK),
    ([State.OK, State.WARNING], State.WARNING),
    ([State.WARNING, State.UNKNOWN], State.UNKNOWN),
    ([State.UNKNOWN, State.CRITICAL, State.OK], State.CRITICAL),
])
def test_worst(states, expected) -> None:
    assert worst(states) is expected


def test_exit_codes_follow_the_scripting_convention() -> None:
    assert [s.exit_code for s in State] == [0, 1, 3, 2]


@pytest.mark.parametrize("value, expected", [
    (0.5, State.OK), (0.8, State.WARNING), (0.94, State.WARNING), (0.95, State.CRITICAL),
])
def test_threshold_higher_is_worse(value, expected) -> None:
    assert Threshold(0.8, 0.95).judge(value) is expected


def test_threshold_lower_is_worse() -> None:
    days = Threshold(30, 7, higher_is_worse=False)
    assert [days.judge(d) for d in (90, 30, 8, 7, -1)] == [
        State.OK, State.WARNING, State.WARNING, State.CRITICAL, State.CRITICAL]


def test_a_dependency_chain_deeper_than_the_recursion_limit_is_explained() -> None:
    # s0 depends on s1, ..., s1499 on db: loading and assessing must not recurse per link.
    depth = 1500
    lines = ["platform: {name: deep}", "services:"]
    lines += [f"  s{i}: {{port: 8000, depends_on: [s{i + 1}], checks: [{{type: tcp}}]}}"
              for i in range(depth - 1)]
    lines += [f"  s{depth - 1}: {{port: 8000, depends_on: [db], checks: [{{type: tcp}}]}}",
              "databases:", "  db: {port: 5432, checks: [{type: postgres}]}"]
    deep = loads("\n".join(lines), "opsplane.yaml")
    found = {f"s{i}/tcp": ProbeResult(State.CRITICAL, "refuses connections") for i in range(depth)}
    found["db/postgres"] = ProbeResult(State.CRITICAL, "refuses connections")

    top = by_name(assess(deep, found))["s0"]

    assert [cause.path[-1] for cause in top.root_causes] == ["db"]
    assert len(top.root_causes[0].path) == depth
