"""The pre-deploy gate of the manual: no open P0/P1 incident and no firing P0/P1 alert on the
service or what it depends on; lesser ones and other services do not block."""

from __future__ import annotations

from datetime import UTC, datetime

from opsplane.config import loads
from opsplane.deploy.gates import GateContext, blocking
from opsplane.incidents import service as incidents
from opsplane.store import Store

NOW = datetime(2026, 12, 8, 11, 0, tzinfo=UTC)
INVENTORY = loads("""
platform: {name: shop}
services:
  gateway: {port: 8000, depends_on: [catalog]}
  catalog: {port: 8001, depends_on: [postgres]}
  search: {port: 8002}
databases:
  postgres: {port: 5432}
""")


def gate(store: Store, service: str) -> list[str]:
    with store.session() as session:
        return blocking(GateContext(INVENTORY, session, service, NOW))


def open_incident(store: Store, service: str, severity: str) -> int:
    with store.session() as session:
        row = incidents.create(session, title=f"{service} trouble", service=service, severity=severity,
                               actor="cli:ana", now=NOW, settings=INVENTORY.incidents)
        return row.id


def test_an_open_p1_on_a_dependency_blocks_and_says_which(store: Store) -> None:
    assert gate(store, "catalog") == []
    number = open_incident(store, "postgres", "P1")
    assert gate(store, "catalog") == [f"incident {number} (P1) is open on postgres"]
    assert gate(store, "search") == []  # not a dependency of search


def test_a_p2_or_a_resolved_incident_does_not_block(store: Store) -> None:
    open_incident(store, "catalog", "P2")
    number = open_incident(store, "catalog", "P0")
    with store.session() as session:
        incidents.resolve(session, incident_id=number, actor="cli:ana", now=NOW, settings=INVENTORY.incidents,
                          summary="fixed")
    assert gate(store, "catalog") == []
