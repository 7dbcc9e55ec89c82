"""`serve`'s runbooks worker on a real store, two replicas of it at once: an incident whose firing
alert names a runbook the policy allows gets one run, by one of them; recovery is verified once
the alert resolves, and the incident is resolved by system:runbook. An incident somebody
acknowledged gets none."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from opsplane.alerts.tables import AlertRow
from opsplane.clock import SystemClock
from opsplane.config.loader import loads
from opsplane.events import service as events
from opsplane.incidents import service as incidents
from opsplane.incidents.models import AlertSignal
from opsplane.runbooks import service as runs
from opsplane.runbooks.worker import RunbookWorker
from opsplane.store import Store
from opsplane.telemetry import ControlPlaneMetrics
from opsplane.workers import WorkerContext

INVENTORY = """
platform: {name: shop}
services:
  payments: {port: 8001, checks: []}
runbooks:
  dir: runbooks
  auto: [{severities: [P1], verify_within: 30s}]
"""
POKE = """
name: poke
title: Poke payments
parameters:
  service: {of: service}
steps:
  - {id: say, kind: note, text: "poked ${service}"}
"""


def fire(store: Store, fingerprint: str, *, acknowledged: bool = False) -> int:
    """A CheckFailing alert of payments, firing, whose rule names the runbook `poke`, and the
    incident it opened."""
    now = datetime.now(UTC)
    with store.session() as session:
        session.add(AlertRow(fingerprint=fingerprint, rule="CheckFailing", state="firing", value=3.0,
                             labels={"alertname": "CheckFailing", "severity": "P1", "service": "payments"},
                             annotations={"summary": "payments fails", "runbook_url": "poke"},
                             active_at=now, last_seen_at=now, fired_at=now))
        signal = AlertSignal(fingerprint, "CheckFailing", "P1", "payments", f"payments/{fingerprint}",
                             "payments fails", now)
        settings = loads(INVENTORY.replace("dir: runbooks", "dir: .")).incidents
        [incident] = incidents.open_or_join(session, alerts=[signal], now=now, settings=settings)
        if acknowledged:
            incidents.acknowledge(session, incident_id=incident.id, actor="cli:ana", now=now)
        return incident.id


def resolve_alert(store: Store, fingerprint: str) -> None:
    with store.session() as session:
        row = session.get(AlertRow, fingerprint)
        assert row is not None
        row.state, row.resolved_at = "resolved", datetime.now(UTC)


async def until(condition: object, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def test_two_replicas_run_an_incidents_runbook_once_and_resolve_it_once_recovered(
        tmp_path: Path) -> None:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "poke.yaml").write_text(POKE)
    inventory = loads(INVENTORY)
    url = f"sqlite:///{tmp_path}/o.db"
    stores = [Store.open(url), Store.open(url)]
    workers = [RunbookWorker(WorkerContext(inventory=inventory, store=store, clock=SystemClock(),
                                           env="production", metrics=ControlPlaneMetrics(process=False),
                                           inventory_dir=tmp_path))
               for store in stores]
    ours = fire(stores[0], "a1")
    theirs = fire(stores[0], "b2", acknowledged=True)
    for worker in workers:
        await worker.start()
    try:
        def ran() -> list[object]:
            with stores[0].session() as session:
                return [r for r in runs.get_all(session, incident_id=ours) if r.state == "succeeded"]

        await until(ran)
        await asyncio.sleep(2.5)  # a round or more of each replica, the alert still firing
        with stores[0].session() as session:
            assert incidents.get_or_raise(session, incident_id=ours).status == "triggered"
        resolve_alert(stores[0], "a1")

        def resolved() -> bool:
            with stores[0].session() as session:
                return incidents.get_or_raise(session, incident_id=ours).status == "resolved"

        await until(resolved)
    finally:
        for worker in workers:
            await worker.stop()
    with stores[0].session() as session:
        [run] = runs.get_all(session, incident_id=ours)
        assert (run.runbook, run.mode, run.requested_by) == ("poke", "auto", "system:runbook")
        assert run.parameters == {"service": "payments"}
        assert runs.get_all(session, incident_id=theirs) == []  # a person had it
        [recovered] = events.get_all(session, kind="runbook.recovered")
        assert recovered.target == f"INC-{ours}/runbook-run:{run.id}"
        [update] = incidents.get_updates(session, incident_id=ours)
        assert (update.status, update.author) == ("resolved", "system:runbook")
        assert "recovery was verified: alerts resolved (CheckFailing)" in update.summary
    for store in stores:
        store.close()
