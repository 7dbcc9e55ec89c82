"""From what HAProxy runs to what is asked: the runtime API commands, as pure functions."""

from __future__ import annotations

import pytest

from opsplane.drivers.traffic import Backend, ProxyError
from opsplane.drivers.traffic.haproxy_plan import Slot, parse_route_name, parse_servers_state, plan_slots

B = "catalog:127.0.0.1:8000"

# An answer of HAProxy 2.6 to `show servers state`: slot1 running, slot2 drained, slot3 and
# slot4 free (slot2 was made ready from `disabled` once, hence its bit 0x04).
SHOW_SERVERS_STATE = "\n".join([
    "1",
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
    "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port "
    "srv_check_addr srv_agent_addr srv_agent_port",
    "3 catalog:127.0.0.1:8000 1 slot1 127.0.0.1 2 0 19 19 1 1 0 2 0 0 0 0 - 9001 - 0 0 - - 0",
    "3 catalog:127.0.0.1:8000 2 slot2 127.0.0.1 2 12 1 1 1 1 0 0 8 0 0 0 - 9002 - 0 0 - - 0",
    "3 catalog:127.0.0.1:8000 3 slot3 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0",
    "3 catalog:127.0.0.1:8000 4 slot4 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 1 - 0 0 - - 0",
    "", "",
])


def slots() -> list[Slot]:
    return parse_servers_state(SHOW_SERVERS_STATE)


def backend(port: int, weight: int, name: str | None = None) -> tuple[Backend, str]:
    return Backend(name or f"b{port}", "127.0.0.1", port, weight, "v1"), "127.0.0.1"


def test_show_servers_state_is_read_into_slots() -> None:
    assert slots() == [
        Slot(B, "slot1", "127.0.0.1", 9001, "ready", 19),
        Slot(B, "slot2", "127.0.0.1", 9002, "drain", 1),
        Slot(B, "slot3", "127.0.0.1", 1, "maint", 1),
        Slot(B, "slot4", "127.0.0.1", 1, "maint", 1),
    ]
    assert [s.effective_weight for s in slots()] == [19, 0, 0, 0]


def test_nothing_to_do_sends_nothing() -> None:
    plan = plan_slots(B, slots(), [backend(9001, 19), backend(9002, 0)])

    assert plan.placed == {"b9001": "slot1", "b9002": "slot2"}
    assert plan.commands == ("set server catalog:127.0.0.1:8000/slot2 weight 0",)


def test_a_switch_raises_the_new_side_before_it_lowers_the_old() -> None:
    plan = plan_slots(B, slots(), [backend(9001, 0), backend(9002, 1)])

    assert plan.commands == (
        f"set server {B}/slot2 state ready",
        f"set server {B}/slot1 weight 0",
        f"set server {B}/slot1 state drain",
    )


def test_a_new_backend_takes_a_free_slot_and_a_removed_one_goes_to_maintenance() -> None:
    plan = plan_slots(B, slots(), [backend(9002, 5), backend(9005, 1)])

    assert plan.placed == {"b9002": "slot2", "b9005": "slot3"}
    assert plan.commands == (
        f"set server {B}/slot2 weight 5",
        f"set server {B}/slot2 state ready",
        f"set server {B}/slot3 addr 127.0.0.1 port 9005",
        f"set server {B}/slot3 state ready",
        f"set server {B}/slot1 state maint",
    )


def test_without_free_slots_a_new_backend_takes_one_that_is_leaving() -> None:
    two = slots()[:2]

    plan = plan_slots(B, two, [backend(9002, 1), backend(9007, 1)])

    assert plan.placed == {"b9002": "slot2", "b9007": "slot1"}
    assert plan.commands == (
        f"set server {B}/slot2 state ready",
        f"set server {B}/slot1 state maint",
        f"set server {B}/slot1 addr 127.0.0.1 port 9007",
        f"set server {B}/slot1 weight 1",
        f"set server {B}/slot1 state ready",
    )


def test_more_backends_than_slots_are_refused() -> None:
    with pytest.raises(ProxyError, match="has 4 slots; 5 backends do not fit"):
        plan_slots(B, slots(), [backend(9000 + n, 1) for n in range(5)])


def test_a_route_name_is_read_back_into_service_and_listen_address() -> None:
    assert parse_route_name(B) == ("catalog", "127.0.0.1", 8000)
    assert parse_route_name("catalog:::1:8000") == ("catalog", "::1", 8000)
    assert parse_route_name("stats") is None
