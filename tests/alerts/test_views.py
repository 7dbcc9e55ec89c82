"""`opsplane alerts`: what is firing, pending and muted, and the exit code scripts read."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from opsplane.alerts import evaluations, service
from opsplane.alerts.cli import alerts_command
from opsplane.alerts.state import Alert, AlertState
from opsplane.alerts.views import evaluation_status
from opsplane.clock import SystemClock
from opsplane.store import Store
from tests.alerts.factories import T0, alert

INVENTORY = """
platform: {name: shop}
services:
  orders: {depends_on: [postgres]}
databases:
  postgres: {}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "opsplane.yaml").write_text(INVENTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPSPLANE_DATABASE_URL", f"sqlite:///{tmp_path}/opsplane.db")
    return tmp_path


def _answer(*args: str) -> tuple[int, dict[str, Any]]:
    app = typer.Typer()
    app.command()(alerts_command)
    result = CliRunner().invoke(app, ["--json", *args])
    return result.exit_code, json.loads(result.output)


def _run(*args: str) -> tuple[int, list[dict[str, Any]]]:
    code, answer = _answer(*args)
    return code, answer["alerts"]


def _evaluated(workdir: Path, *, ago: float = 5.0, interval: float = 15.0, **fields: Any) -> None:
    """Record an alerting cycle `ago` seconds ago, as a serve evaluating every `interval` would."""
    now = SystemClock().now()
    store = Store.open(f"sqlite:///{workdir}/opsplane.db")
    with store.session() as session:
        evaluations.record(session, evaluations.Evaluation(**{
            "evaluated_at": now - timedelta(seconds=ago), "host": "ops-1", "pid": 4242, "interval": interval,
            "started_at": now - timedelta(hours=1), "rules": 25, **fields}))
    store.close()


def _store(workdir: Path, *alerts_: Alert) -> None:
    store = Store.open(f"sqlite:///{workdir}/opsplane.db")
    with store.session() as session:
        service.save_changes(session, stored={}, alerts=alerts_, dropped=[], now=SystemClock().now())
    store.close()
    _evaluated(workdir)


def test_firing_alerts_come_first_and_inhibited_ones_name_their_cause(workdir: Path) -> None:
    now = SystemClock().now()
    _store(workdir,
           alert("HighErrorRate", service="orders", at=now - timedelta(minutes=3)),
           alert("DatabaseDown", severity="P0", service="postgres", at=now - timedelta(minutes=4)),
           alert("HighLatency", severity="P2", service="orders", state=AlertState.PENDING, at=now))
    code, rows = _run()
    assert [(r["name"], r["state"]) for r in rows] == [
        ("DatabaseDown", "firing"), ("HighErrorRate", "firing"), ("HighLatency", "pending")]
    assert rows[1]["muted"] == "inhibited by DatabaseDown (postgres)"
    assert rows[0]["muted"] is None and code == 2


def test_silenced_alerts_are_marked_and_do_not_set_the_exit_code(workdir: Path) -> None:
    now = SystemClock().now()
    _store(workdir, alert("HighLatency", severity="P2", service="orders", at=now - timedelta(minutes=1)))
    store = Store.open(f"sqlite:///{workdir}/opsplane.db")
    with store.session() as session:
        silence = service.create_silence(session, matchers=['service="orders"'], author="ana",
                                         comment="deploy", starts_at=now - timedelta(minutes=1),
                                         ends_at=now + timedelta(hours=1), now=now, actor="cli:ana")
    store.close()
    code, (row,) = _run()
    assert row["muted"] == f"silenced by #{silence.id}" and code == 0


def test_a_warning_firing_unmuted_exits_1_and_resolved_alerts_need_all(workdir: Path) -> None:
    now = SystemClock().now()
    _store(workdir,
           alert("HighLatency", severity="P2", service="orders", at=now - timedelta(minutes=1)),
           alert("HighErrorRate", service="orders", state=AlertState.RESOLVED, at=now))
    code, rows = _run()
    assert [r["name"] for r in rows] == ["HighLatency"] and code == 1
    code, rows = _run("--all")
    assert [r["state"] for r in rows] == ["firing", "resolved"]


def test_a_rule_alert_shows_its_value_and_a_received_one_shows_none(workdir: Path) -> None:
    now = SystemClock().now()
    received = replace(alert("InstanceDown", service="orders", at=now, value=math.nan), source="prometheus")
    _store(workdir, alert("HighErrorRate", service="orders", at=now, value=0.0625), received)
    _, rows = _run()
    shown = {r["name"]: (r["value"], r["value_text"], r["source"]) for r in rows}
    assert shown == {"HighErrorRate": (0.0625, "0.0625", "rule"), "InstanceDown": (None, "-", "prometheus")}


def test_values_read_in_their_rules_unit_and_stay_exact_in_json(workdir: Path) -> None:
    now = SystemClock().now()
    _store(workdir,
           replace(alert("HighErrorRate", service="orders", at=now, value=0.019037883636991926),
                   unit="ratio"),
           replace(alert("HighLatencyP99", service="orders", at=now, value=1.2345), unit="seconds"),
           replace(alert("HighRedisMemory", service="cache", at=now, value=4.2e9), unit="bytes"),
           replace(alert("CheckFailing", service="orders", at=now, value=3.0), unit="count"),
           alert("Custom", service="orders", at=now, value=0.019037883636991926))
    _, rows = _run()
    shown = {r["name"]: (r["value"], r["unit"], r["value_text"]) for r in rows}
    assert shown == {
        "HighErrorRate": (0.019037883636991926, "ratio", "1.9%"),
        "HighLatencyP99": (1.2345, "seconds", "1.23 s"),
        "HighRedisMemory": (4.2e9, "bytes", "3.91 GiB"),
        "CheckFailing": (3.0, "count", "3"),
        "Custom": (0.019037883636991926, None, "0.01904"),
    }
    table = CliRunner().invoke(_app(), [])
    assert "1.9%" in table.output and "0.019037883636991926" not in table.output


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(alerts_command)
    return app


RUNBOOK = "https://runbooks.example.com/platform/checkout/high-error-rate-on-the-orders-service.md"


def _shown_at(workdir: Path, columns: int) -> list[str]:
    shown = subprocess.run([sys.executable, "-m", "opsplane", "alerts"], cwd=workdir, capture_output=True,
                           text=True, env={**os.environ, "COLUMNS": str(columns)}, timeout=60)
    assert shown.returncode == 2, shown.stderr
    return shown.stdout.splitlines()


def test_the_runbook_is_shown_whole_on_a_line_of_its_own_however_wide_the_terminal(workdir: Path) -> None:
    now = SystemClock().now()
    _store(workdir,
           replace(alert("HighErrorRate", service="orders", at=now), annotations={"runbook_url": RUNBOOK}),
           replace(alert("HighErrorRate", service="payments", at=now), annotations={"runbook_url": RUNBOOK}))
    wide = _shown_at(workdir, 200)
    assert wide[wide.index("Runbooks:") + 1:] == [f"  [1] {RUNBOOK}"]  # once, though two alerts share it
    assert [line.split("│")[-2].strip() for line in wide if "HighErrorRate" in line] == ["[1]", "[1]"]
    narrow = _shown_at(workdir, 60)  # no table fits: one block per alert, its runbook whole
    assert narrow.count(f"  runbook: {RUNBOOK}") == 2
    assert narrow[1].startswith("firing HighErrorRate P1 at 1 since ")


def test_no_evaluation_ever_exits_unknown_and_says_nothing_is_watching(workdir: Path) -> None:
    Store.open(f"sqlite:///{workdir}/opsplane.db").close()  # a store no serve has used
    code, answer = _answer()
    assert code == 3
    assert answer["alerts"] == [] and answer["evaluation"]["current"] is False
    assert "nothing is watching" in answer["evaluation"]["text"]
    table = CliRunner().invoke(_app(), [])
    assert table.exit_code == 3 and "Start `opsplane serve`" in table.output


def test_a_recent_evaluation_says_when_by_whom_and_how_often(workdir: Path) -> None:
    _evaluated(workdir, ago=4)
    code, answer = _answer()
    assert code == 0 and answer["alerts"] == []
    evaluation = answer["evaluation"]
    assert evaluation["current"] is True
    assert (evaluation["host"], evaluation["pid"], evaluation["interval_seconds"]) == ("ops-1", 4242, 15.0)
    assert evaluation["text"] == "Rules last evaluated 4s ago by serve on ops-1 (pid 4242, every 15s)."
    table = CliRunner().invoke(_app(), [])
    assert table.exit_code == 0
    assert table.output.splitlines() == [evaluation["text"], "No alerts firing or pending."]


def test_an_old_evaluation_exits_unknown_even_with_a_page_in_the_store(workdir: Path) -> None:
    now = SystemClock().now()
    _store(workdir, alert("DatabaseDown", severity="P0", service="postgres", at=now - timedelta(minutes=20)))
    _evaluated(workdir, ago=600)
    code, answer = _answer()
    assert code == 3 and [r["name"] for r in answer["alerts"]] == ["DatabaseDown"]
    assert answer["evaluation"]["text"].startswith("Rules last evaluated 10m ago by serve on ops-1")
    assert "nothing is evaluating them now" in answer["evaluation"]["text"]


def _evaluation(at: datetime, **fields: Any) -> evaluations.Evaluation:
    return evaluations.Evaluation(**{"evaluated_at": at, "host": "ops-1", "pid": 7, "interval": 15.0,
                                 "started_at": at, "rules": 4, **fields})


def test_evaluations_count_as_current_for_three_intervals() -> None:
    last = _evaluation(T0)
    assert evaluation_status(last, T0 + timedelta(seconds=45))["current"] is True
    assert evaluation_status(last, T0 + timedelta(seconds=45.001))["current"] is False
    slow = _evaluation(T0, interval=60.0)
    assert evaluation_status(slow, T0 + timedelta(seconds=170))["current"] is True


def test_failing_rules_are_named_and_all_failing_is_unknown() -> None:
    some = evaluation_status(_evaluation(T0, failing=("HighErrorRate{severity=\"P1\"}",)), T0)
    assert some["current"] is True and "1 of 4 rules failed" in some["text"]
    every = evaluation_status(_evaluation(T0, rules=2, failing=("A", "B")), T0)
    assert every["current"] is False and "every rule failed" in every["text"]
    idle = evaluation_status(_evaluation(T0, rules=0), T0)
    assert idle["current"] is True and "nothing for them to read yet" in idle["text"]
