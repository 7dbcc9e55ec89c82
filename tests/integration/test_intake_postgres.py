"""Alerts a Prometheus sends to `opsplane serve` on a PostgreSQL store, whose columns have
lengths: no received alert, however long its labels and texts, stops alerting. Values are
fitted to their columns (cut, ending in "…"), an alert the store still refuses is dropped and
recorded rather than retried for ever, and a cycle that fails shows on /health and /metrics.

A real serve and a real PostgreSQL; the store's refusals are PostgreSQL's own (a CHECK
constraint or a trigger added to the test's database plays a store that refuses one alert, or
every write)."""

from __future__ import annotations

import itertools
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from opsplane.alerts import service as alerts
from opsplane.alerts.state import Alert
from opsplane.drivers.sandbox.postgres import TemporaryPostgres
from opsplane.events.tables import Event
from opsplane.incidents.tables import IncidentRow
from opsplane.store import Store
from tests.support.polling import wait_for
from tests.support.serve import Serve

pytestmark = pytest.mark.slow

_names = (f"intake_{i}" for i in itertools.count())


class Listener:
    """A TCP port that accepts connections until closed: the one service's check passes
    until the test closes it."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]

    def close(self) -> None:
        self.socket.close()


class Plane:
    """serve on a database of its own, a responder's token, and the store read directly."""

    def __init__(self, serve: Serve, store: Store, token: str, database: str,
                 cluster: TemporaryPostgres) -> None:
        self.serve, self.store, self.database, self.cluster = serve, store, database, cluster
        self.client = httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {token}"},
                                   timeout=30, trust_env=False)
        self.log: str | None = None

    def stop(self) -> str:
        """Stop serve; its log."""
        self.log = self.serve.stop()
        return self.log

    def send(self, *alerts: dict[str, Any]) -> httpx.Response:
        return self.client.post("/api/v2/alerts", json=list(alerts))

    def alerts(self) -> dict[str, Alert]:
        with self.store.session() as session:
            return {a.name: a for a in alerts.get_all(session)}

    def events(self, kind: str) -> list[Event]:
        with self.store.session() as session:
            return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))

    def incidents(self) -> list[IncidentRow]:
        with self.store.session() as session:
            return list(session.scalars(select(IncidentRow).order_by(IncidentRow.id)))

    def sql(self, statement: str) -> None:
        self.cluster.execute(statement, database=self.database)

    def metric(self, name: str) -> float | None:
        for line in httpx.get(f"{self.serve.url}/metrics", trust_env=False).text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None


@pytest.fixture
def listener() -> Iterator[Listener]:
    opened = Listener()
    yield opened
    opened.close()


@pytest.fixture
def plane(tmp_path: Path, postgres_cluster: TemporaryPostgres, listener: Listener) -> Iterator[Plane]:
    database = next(_names)
    postgres_cluster.execute(f'CREATE DATABASE "{database}"')
    inventory = tmp_path / "opsplane.yaml"
    inventory.write_text(
        "platform: {name: shop}\n"
        "defaults: {interval: 300ms, timeout: 1s}\n"
        f"services:\n  orders: {{port: {listener.port}, checks: [{{type: tcp}}]}}\n"
        "alerting:\n"
        "  evaluation_interval: 500ms\n"
        "  builtin_rules: {thresholds: {check_failures: 2}}\n")
    serve = Serve(tmp_path, inventory, database_url=postgres_cluster.url(database))
    token = json.loads(serve.cli("token", "create", "--name", "prometheus", "--role", "responder",
                                 "--json"))["token"]
    store = Store.open(postgres_cluster.url(database))
    serve.start()
    started = Plane(serve, store, token, database, postgres_cluster)
    try:
        yield started
    finally:
        started.client.close()
        checked = started.log is None  # a test that stopped serve looked at its log itself
        log = serve.stop() if checked else ""
        store.close()
        assert "Traceback" not in log, log[-3000:]


def received(name: str, **labels: str) -> dict[str, Any]:
    ends_at = datetime.now(UTC) + timedelta(minutes=4)
    return {"labels": {"alertname": name, "severity": "critical", **labels},
            "annotations": {"summary": f"{name} fires"},
            "endsAt": ends_at.isoformat().replace("+00:00", "Z")}


def test_an_alert_with_values_longer_than_their_columns_does_not_stop_alerting(
    plane: Plane, listener: Listener
) -> None:
    service = "s" * 150  # events.service and incidents.service hold 100
    name = "VeryLong" + "N" * 392  # events.target holds 300, incident_alerts.alertname 100
    long = received(name, service=service)
    long["annotations"]["summary"] = "x" * 2000  # incidents.title holds 300
    assert plane.send(long).status_code == 200, plane.send(long).text

    kept = wait_for(lambda: plane.alerts().get(name), "the long alert in the store")
    assert kept.labels["service"] == service  # labels are kept whole (a JSON document)
    [firing] = wait_for(lambda: plane.events("alert.firing"), "its alert.firing event")
    assert firing.service == service[:99] + "…" and len(firing.target) == 300
    assert firing.details["labels"]["service"] == service
    [incident] = wait_for(plane.incidents, "the incident it opens")
    assert len(incident.title) == 300 and incident.title.endswith("…")

    # what comes after it is alerted on as ever: a rule's alert, and another received one
    listener.close()
    wait_for(lambda: "CheckFailing" in plane.alerts(), "CheckFailing for the closed port", timeout=30)
    assert plane.send(received("Later")).status_code == 200
    wait_for(lambda: "Later" in plane.alerts(), "a later received alert in the store")
    assert plane.metric("opsplane_alert_cycle_failures_total") == 0
    assert httpx.get(f"{plane.serve.url}/health", trust_env=False).json()["status"] == "ok"


def test_an_alert_the_store_refuses_is_dropped_and_recorded_and_the_rest_go_on(
    plane: Plane, listener: Listener
) -> None:
    plane.sql("ALTER TABLE alert_states ADD CONSTRAINT no_poison CHECK (labels->>'alertname' <> 'Poison')")
    answer = plane.send(received("Poison", service="orders"), received("Healthy", service="orders"))
    assert answer.status_code == 200, answer.text

    [dropped] = wait_for(lambda: plane.events("alert.intake_dropped"), "the poison alert recorded as dropped")
    assert dropped.target == "Poison" and "no_poison" in dropped.details["error"]
    assert dropped.details["sender"] == "token:prometheus"
    wait_for(lambda: "Healthy" in plane.alerts(), "the other alert of the request in the store")
    assert "Poison" not in plane.alerts()

    # sent again (Prometheus re-sends every minute): dropped again, recorded once
    assert plane.send(received("Poison", service="orders")).status_code == 200
    wait_for(lambda: (plane.metric("opsplane_alerts_dropped_total") or 0) >= 2, "the second drop counted")
    assert len(plane.events("alert.intake_dropped")) == 1

    listener.close()
    wait_for(lambda: "CheckFailing" in plane.alerts(), "CheckFailing for the closed port", timeout=30)
    assert plane.metric("opsplane_alert_cycle_failures_total") == 0


def test_a_cycle_that_fails_shows_on_health_and_metrics_until_one_succeeds(plane: Plane) -> None:
    health = f"{plane.serve.url}/health"
    assert plane.send(received("First")).status_code == 200  # alerting starts for it
    wait_for(lambda: "First" in plane.alerts(), "the first alert in the store")
    assert (plane.metric("opsplane_alert_cycle_last_success_timestamp_seconds") or 0) > 0
    plane.sql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
              "$$ BEGIN RAISE EXCEPTION 'the disk is full'; END $$")
    plane.sql("CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON alert_evaluations "
              "FOR EACH ROW EXECUTE FUNCTION refuse()")
    assert plane.send(received("WhileFailing")).status_code == 200

    def degraded() -> httpx.Response | None:
        answer = httpx.get(health, trust_env=False)
        return answer if answer.json()["status"] == "degraded" else None

    answer = wait_for(degraded, "/health to say degraded")
    assert answer.status_code == 503
    assert "alerting cycle" in answer.json()["reason"] and "the disk is full" in answer.json()["reason"]
    wait_for(lambda: (plane.metric("opsplane_alert_cycle_failures_total") or 0) >= 3, "three failed cycles")
    failed_at = plane.metric("opsplane_alert_cycle_last_success_timestamp_seconds")

    plane.sql("DROP TRIGGER refuse ON alert_evaluations")
    wait_for(lambda: httpx.get(health, trust_env=False).json()["status"] == "ok", "/health ok again")
    assert (plane.metric("opsplane_alert_cycle_last_success_timestamp_seconds") or 0) > (failed_at or 0)
    wait_for(lambda: "WhileFailing" in plane.alerts(), "the alert kept while cycles failed")
    # the failure's traceback is logged once, then a line a cycle while the reason is the same
    log = plane.stop()
    assert log.count("an alerting cycle failed; the next") == 1 and log.count("failed again") >= 2, log
    assert "the disk is full" in log and "[parameters:" not in log
