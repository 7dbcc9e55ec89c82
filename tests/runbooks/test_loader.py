"""Runbook files are refused at load time with the file, line and field of each problem, and
`opsplane config validate` checks the inventory's runbooks directory with the inventory."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsplane.config.loader import loads as load_inventory
from opsplane.errors import ConfigError
from opsplane.runbooks.loader import catalog, loads
from tests.support.cli import Opsplane

INVENTORY = load_inventory("""
platform: {name: shop}
services:
  orders:
    port: 8002
    checks: [{type: http, path: /health}]
caches:
  sessions: {port: 6379}
""")

HEAD = "name: orders-down\ntitle: Orders does not answer\nsteps:\n"


def refusal(steps: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as caught:
        loads(HEAD + steps, "runbooks/orders.yaml", INVENTORY)
    assert all(p.file == "runbooks/orders.yaml" for p in caught.value.problems)
    return [(p.line, p.field, p.message) for p in caught.value.problems]


def test_a_valid_runbook_loads_with_the_line_of_each_step() -> None:
    loaded = loads(HEAD + """\
  - {id: look, kind: check, check: orders/http, safe: true}
  - id: which
    kind: decide
    step: look
    when: {ok: end, failed: restart}
  - {id: restart, kind: action, action: restart, target: orders}
""", "orders.yaml", INVENTORY)
    assert [s.id for s in loaded.runbook.steps] == ["look", "which", "restart"]
    assert loaded.lines == {"look": 4, "which": 5, "restart": 9}


@pytest.mark.parametrize(("steps", "line", "field", "message"), [
    ("  - {id: look, kind: chek, check: orders/http}\n", 4, "steps[0].kind",
     "unknown step kind 'chek'; expected one of check, query, report, command, action, decide, confirm, "
     "approve, wait_until, note; did you mean 'check'?"),
    ("  - {id: look, kind: check, check: order/http}\n", 4, "steps[0].check",
     "unknown component 'order'; did you mean 'orders'?"),
    ("  - {id: look, kind: check, check: orders/tcp}\n", 4, "steps[0].check",
     "orders has no check 'tcp'; its checks: http"),
    ("  - {id: fix, kind: action, action: restart, target: ordrs}\n", 4, "steps[0].target",
     "restart: unknown service 'ordrs'; the inventory's: orders; did you mean 'orders'?"),
    ("  - {id: flush, kind: action, action: flush-cache, target: orders}\n", 4, "steps[0].target",
     "flush-cache: unknown cache 'orders'; the inventory's: sessions"),
    ("  - {id: look, kind: check, check: orders/http}\n  - {id: d, kind: decide, step: look, "
     "when: {failed: restrat}}\n  - {id: restart, kind: note, text: x}\n", 5, "steps[1].when.failed",
     "unknown step 'restrat'; expected a step id or end, fail, abort; did you mean 'restart'?"),
    ("  - {id: look, kind: note, text: x, next: nowhere}\n", 4, "steps[0].next",
     "unknown step 'nowhere'; expected a step id or end, fail, abort"),
    ("  - {id: d, kind: decide, step: gone, when: {ok: end}}\n", 4, "steps[0].step", "unknown step 'gone'"),
    ("  - {id: look, kind: note, text: x}\n  - {id: look, kind: note, text: y}\n", 5, "steps[1].id",
     "duplicate step id 'look' (first used by steps[0])"),
    ("  - {id: look, kind: check, check: orders/http}\n  - {id: d, kind: decide, step: look, "
     "when: {failed: fix}}\n  - {id: fix, kind: note, text: x, next: d}\n", 6, "steps[2]",
     "the steps go round in a cycle: d -> fix -> d; a runbook runs each step once (wait_until looks "
     "again by itself)"),
    ("  - {id: run, kind: command, argv: [echo], timeout: soon}\n", 4, "steps[0].timeout",
     "expected a duration such as 10s, 500ms or 5m, got 'soon'"),
    ("  - {id: f, kind: action, action: flush-cache, target: sessions, safe: true}\n", 4, "steps[0]",
     "flush-cache always needs a person to type the cache's name: it cannot be safe"),
    ("  - {id: hi, kind: note, text: 'for ${who}'}\n", 4, "steps[0]",
     "${who} names no parameter; declare it under parameters"),
    ("  - {id: end, kind: note, text: x}\n", 4, "steps[0].id",
     "'end' is reserved (it means where a run ends); give the step another id"),
])
def test_a_mistake_is_refused_at_its_line_and_field(steps: str, line: int, field: str, message: str) -> None:
    found = refusal(steps)
    assert any(at == line and f == field and said.startswith(message) for at, f, said in found), found


def test_a_wait_until_looking_again_is_no_cycle() -> None:
    loaded = loads(HEAD + """\
  - {id: wait, kind: wait_until, check: orders/http, timeout: 5m, every: 10s}
  - {id: d, kind: decide, step: wait, when: {ok: end, timed_out: give-up}}
  - {id: give-up, kind: note, text: page the owner}
""", "orders.yaml", INVENTORY)
    assert loaded.runbook.step("wait").timeout == 300


def test_config_validate_names_the_runbook_file_and_line(tmp_path: Path) -> None:
    opsplane = Opsplane(tmp_path, {"platform": {"name": "shop"}, "runbooks": {"dir": "runbooks"},
                                   "services": {"orders": {"port": 8002, "checks": [{"type": "tcp"}]}}})
    (tmp_path / "runbooks").mkdir()
    written = tmp_path / "runbooks" / "orders.yaml"
    written.write_text(HEAD + "  - {id: look, kind: check, check: orders/http}\n")
    ran = opsplane("config", "validate", code=3)
    assert "runbooks/orders.yaml:4:" in ran.stderr
    assert "steps[0].check: orders has no check 'http'; its checks: tcp" in ran.stderr
    written.write_text(HEAD + "  - {id: look, kind: check, check: orders/tcp}\n")
    assert opsplane("config", "validate").stdout.rstrip().endswith("; 1 runbook")  # its own only


def test_a_missing_runbooks_directory_is_named(tmp_path: Path) -> None:
    inventory = load_inventory("platform: {name: shop}\nrunbooks: {dir: nowhere}\n")
    with pytest.raises(ConfigError) as caught:
        catalog(inventory, tmp_path)
    assert caught.value.problems[0].field == "runbooks.dir"
