"""Commands run where there is nothing yet: a missing inventory is named with where opsplane
looked and how to point elsewhere, and a command that only reads never creates a store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.oncall.factories import oncall_data

pytestmark = pytest.mark.slow

INVENTORY = {
    "platform": {"name": "shop"},
    "services": {"orders": {"kind": "api", "port": 8002}},
    "oncall": oncall_data(),
}

# Every command that only reads what has been recorded.
READS = [
    ["events"],
    ["events", "--json", "--since", "24h"],
    ["alerts"],
    ["alerts", "--json"],
    ["silence", "list"],
    ["incident", "list"],
    ["incident", "show", "1"],
    ["incident", "postmortem", "1"],
    ["incident", "actions"],
    ["report", "incidents", "--json"],
    ["report", "access", "--json"],
    ["oncall", "now"],
    ["oncall", "schedule"],
    ["oncall", "ical"],
    ["oncall", "escalation", "P1"],
    ["notify", "outbox"],
    ["status", "maintenance", "list"],
    ["token", "list"],
    ["db", "current"],
    ["gameday", "list"],
    ["gameday", "report", "1"],
]


def _run(cwd: Path, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "USER": "ana", "COLUMNS": "200", **(environ or {})}
    return subprocess.run([sys.executable, "-m", "opsplane", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=60)


def _tree(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


@pytest.mark.parametrize("command", READS, ids=" ".join)
def test_a_read_where_there_is_no_store_says_so_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "opsplane.yaml").write_text(yaml.safe_dump(INVENTORY, sort_keys=False))
    before = _tree(tmp_path)
    ran = _run(tmp_path, *command)
    assert _tree(tmp_path) == before
    assert ran.returncode == 3, (ran.stdout, ran.stderr)
    assert "Traceback" not in ran.stderr
    message = " ".join(ran.stderr.split())
    assert f"no store yet at {tmp_path}/.opsplane/opsplane.db" in message
    assert "OPSPLANE_DATABASE_URL" in message


@pytest.mark.parametrize("command", [["health"], ["config", "validate"], ["ps"], ["logs", "orders"]],
                         ids=" ".join)
def test_commands_that_need_no_store_leave_the_directory_untouched(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "opsplane.yaml").write_text(yaml.safe_dump(INVENTORY, sort_keys=False))
    before = _tree(tmp_path)
    ran = _run(tmp_path, *command)
    assert "Traceback" not in ran.stderr
    assert _tree(tmp_path) == before


def test_a_read_finds_no_store_in_a_database_url_that_points_nowhere(tmp_path: Path) -> None:
    (tmp_path / "opsplane.yaml").write_text(yaml.safe_dump(INVENTORY, sort_keys=False))
    elsewhere = tmp_path / "elsewhere" / "ops.db"
    ran = _run(tmp_path, "events", environ={"OPSPLANE_DATABASE_URL": f"sqlite:///{elsewhere}"})
    assert ran.returncode == 3
    assert f"no store yet at {elsewhere}" in " ".join(ran.stderr.split())
    assert not (tmp_path / "elsewhere").exists()


def test_a_command_that_records_creates_the_store_and_reads_then_find_it(tmp_path: Path) -> None:
    (tmp_path / "opsplane.yaml").write_text(yaml.safe_dump(INVENTORY, sort_keys=False))
    wrote = _run(tmp_path, "oncall", "handoff", "--note", "quiet week")
    assert wrote.returncode == 0, wrote.stderr
    assert (tmp_path / ".opsplane" / "opsplane.db").exists()
    read = _run(tmp_path, "events", "--json")
    assert read.returncode == 0, read.stderr
    assert '"oncall.handoff"' in read.stdout


def test_without_an_inventory_the_error_names_the_directory_and_how_to_point_elsewhere(
    tmp_path: Path,
) -> None:
    ran = _run(tmp_path, "health")
    assert ran.returncode == 3
    assert "Traceback" not in ran.stderr
    message = " ".join(ran.stderr.split())
    assert f"no opsplane.yaml in {tmp_path}" in message
    assert "-c/--config" in message and "OPSPLANE_CONFIG" in message
    assert _tree(tmp_path) == []


def test_a_named_inventory_that_is_missing_names_its_directory(tmp_path: Path) -> None:
    ran = _run(tmp_path, "health", environ={"OPSPLANE_CONFIG": "conf/shop.yaml"})
    assert ran.returncode == 3
    assert f"no shop.yaml in {tmp_path}/conf" in " ".join(ran.stderr.split())


@pytest.mark.parametrize("where", ["before", "after"])
def test_the_inventory_can_be_named_before_or_after_the_command(tmp_path: Path, where: str) -> None:
    # `opsplane health -c shop.yaml` is what people type; the option belongs to the root.
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "shop.yaml").write_text(yaml.safe_dump(INVENTORY, sort_keys=False))
    option = ["-c", "conf/shop.yaml"]
    args = [*option, "config", "validate", "--json"] if where == "before" else \
        ["config", "validate", "--json", *option]

    ran = _run(tmp_path, *args)

    assert ran.returncode == 0, ran.stderr
    assert '"valid": true' in ran.stdout


def test_an_error_that_holds_square_brackets_is_printed_as_it_is(tmp_path: Path) -> None:
    """Paths such as HAProxy's "haproxy.cfg.rejected:4]" or "[/x]" are text, not markup."""
    directory = tmp_path / "[/x]"
    directory.mkdir(parents=True)
    ran = _run(directory, "health")
    assert ran.returncode == 3, ran.stderr
    assert "Traceback" not in ran.stderr
    assert f"no opsplane.yaml in {directory}" in " ".join(ran.stderr.split())
