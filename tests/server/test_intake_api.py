"""`POST /api/v2/alerts` on a running control plane: a responder's token is admitted and the
alert reaches the store through an alerting cycle started for it; a viewer's is refused;
a malformed body is a 400 with the reason, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from opsplane.alerts import service
from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.config.loader import loads
from opsplane.server import ControlPlane, create_app
from opsplane.store import Store
from tests.alerts.factories import SHOP_INVENTORY
from tests.support.polling import wait_for


@pytest.fixture
def plane(tmp_path) -> ControlPlane:
    # No checks and nothing scraped: alerting is not running until an alert arrives.
    return ControlPlane(loads(SHOP_INVENTORY), Store.open(f"sqlite:///{tmp_path}/o.db"))


@pytest.fixture
def client(plane: ControlPlane) -> Iterator[TestClient]:
    with TestClient(create_app(plane)) as started:
        yield started


def bearer(plane: ControlPlane, role: Role) -> dict[str, str]:
    with plane.store.session() as session:
        token = tokens.create(session, name=f"prometheus-{role.value}", role=role, actor="test")
    return {"Authorization": f"Bearer {token}"}


def _alert(name: str = "InstanceDown") -> list[dict[str, object]]:
    ends_at = datetime.now(UTC) + timedelta(minutes=4)
    return [{"labels": {"alertname": name, "job": "x", "severity": "critical"},
             "annotations": {"summary": "x is down"},
             "endsAt": ends_at.isoformat().replace("+00:00", "Z")}]


def test_a_responder_posts_an_alert_and_alerting_starts_to_keep_it(
    client: TestClient, plane: ControlPlane
) -> None:
    assert plane.alerting is None
    answer = client.post("/api/v2/alerts", json=_alert(), headers=bearer(plane, Role.RESPONDER))
    assert answer.status_code == 200, answer.text

    def stored() -> list[object]:
        with plane.store.session() as session:
            return service.get_all(session)

    [alert] = wait_for(stored, "the received alert in the store", timeout=10)
    assert alert.labels["severity"] == "P1" and alert.source == "prometheus"


def test_a_viewer_may_not_send_alerts(client: TestClient, plane: ControlPlane) -> None:
    answer = client.post("/api/v2/alerts", json=_alert(), headers=bearer(plane, Role.VIEWER))
    assert answer.status_code == 403
    assert "responder" in answer.json()["detail"]
    assert client.post("/api/v2/alerts", json=_alert()).status_code == 401


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "the body is empty"),
    (b"[{", "the body is not JSON"),
    (b'{"labels": {"alertname": "A"}}', "must be a JSON list of alerts"),
    (b'[{"labels": {"alertname": "A"}, "endsAt": "soon"}]', "alerts[0].endsAt: 'soon' is not an RFC 3339"),
])
def test_a_malformed_body_is_a_400_with_the_reason(
    client: TestClient, plane: ControlPlane, content: bytes, reason: str
) -> None:
    headers = {**bearer(plane, Role.RESPONDER), "Content-Type": "application/json"}
    answer = client.post("/api/v2/alerts", content=content, headers=headers)
    assert answer.status_code == 400
    assert reason in answer.json()["detail"]
    assert plane.alerting is None  # nothing was accepted, so nothing was started
