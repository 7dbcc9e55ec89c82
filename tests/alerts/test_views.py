"""`opsplane alerts`: what is firing, pending and muted, and the exit code scripts read."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from opsplane.alerts import service
from opsplane.alerts.cli import alerts_command
from opsplane.alerts.state import Alert, AlertState
from opsplane.clock import SystemClock
from opsplane.store import Store
from tests.alerts.factories import alert

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


def _run(*args: str) -> tuple[int, list[dict[str, object]]]:
    app = typer.Typer()
    app.command()(alerts_command)
    result = CliRunner().invoke(app, ["--json", *args])
    return result.exit_code, json.loads(result.output)


def _store(workdir: Path, *alerts_: Alert) -> None:
    store = Store.open(f"sqlite:///{workdir}/opsplane.db")
    with store.session() as session:
        service.save_all(session, alerts=alerts_, dropped=[])
    store.close()


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
