"""What one sender can make a real `opsplane serve` hold through `POST /api/v2/alerts` is
bounded: alerts per sender, labels per alert and their length, the size of a request; texts
for people are cut with a marker; and the dashboard's Alerts page shows a page at a time, in
a stable order, however many alerts there are."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsplane.alerts import service as alerts
from opsplane.alerts.state import Alert
from opsplane.auth import service as tokens
from opsplane.auth.service import Role
from opsplane.store import Store
from tests.support.polling import wait_for
from tests.support.serve import Serve

pytestmark = pytest.mark.slow

INVENTORY = "platform: {name: shop}\nservices:\n  orders: {port: 1}\nalerting: {evaluation_interval: 1s}\n"
ENDS = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")


class Sender:
    """A token of its own (the limit is per sender) on the module's serve."""

    def __init__(self, serve: Serve, name: str) -> None:
        self.serve = serve
        self.store = Store.open(serve.env["OPSPLANE_DATABASE_URL"])
        with self.store.session() as session:
            self.token = tokens.create(session, name=name, role=Role.RESPONDER, actor="test")
        self.client = httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {self.token}"},
                                   timeout=60, trust_env=False)

    def close(self) -> None:
        self.client.close()
        self.store.close()

    def send(self, alerts: list[dict[str, Any]] | bytes) -> httpx.Response:
        if isinstance(alerts, bytes):
            return self.client.post("/api/v2/alerts", content=alerts,
                                    headers={"Content-Type": "application/json"})
        return self.client.post("/api/v2/alerts", json=alerts)

    def held(self) -> dict[str, Alert]:
        with self.store.session() as session:
            return {a.labels["alertname"]: a for a in alerts.get_all(session)}


def alert(name: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, **labels}, "annotations": {"summary": f"{name} fires"},
            "endsAt": ENDS}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, httpx.Client]]:
    workdir: Path = tmp_path_factory.mktemp("limits")
    inventory = workdir / "opsplane.yaml"
    inventory.write_text(INVENTORY)
    serve = Serve(workdir, inventory)
    token = json.loads(serve.cli("token", "create", "--name", "ana", "--role", "viewer", "--json"))["token"]
    serve.start()
    browser = httpx.Client(base_url=serve.url, timeout=60, trust_env=False)
    assert browser.post("/ui/login", data={"token": token, "next": "/ui/alerts"}).status_code in (200, 303)
    try:
        yield serve, browser
    finally:
        browser.close()
        log = serve.stop()
        assert "Traceback" not in log


@pytest.fixture
def sender(served: tuple[Serve, httpx.Client],
           request: pytest.FixtureRequest) -> Iterator[tuple[Sender, httpx.Client]]:
    serve, browser = served
    made = Sender(serve, request.node.name[:60])
    try:
        yield made, browser
    finally:
        made.close()


def test_one_sender_holds_at_most_its_limit_of_alerts(sender: tuple[Sender, httpx.Client]) -> None:
    flood, _ = sender
    answers = [flood.send([alert(f"Flood{n}_{i}") for i in range(1500)]) for n in range(3)]

    assert answers[0].status_code == 429
    assert "1,000 of 1,500 alerts accepted" in answers[0].json()["detail"]
    assert "max_alerts_per_sender" in answers[0].json()["detail"]
    assert [a.status_code for a in answers[1:]] == [429, 429]
    assert "no alert accepted" in answers[1].json()["detail"]
    held = wait_for(lambda: (found := flood.held()) and len(found) >= 1000 and found, "1,000 alerts held")
    assert len(held) == 1000
    # an alert it already holds is taken as ever: a re-send, or its resolve
    assert flood.send([alert("Flood0_1")]).status_code == 200


def test_labels_over_their_bounds_refuse_that_alert_and_the_others_are_kept(
    sender: tuple[Sender, httpx.Client]
) -> None:
    flood, _ = sender
    many = {f"l{i}": "x" for i in range(100)}
    answer = flood.send([alert("TooLong", service="s" * 2000), alert("TooMany", **many), alert("Fine")])

    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail.startswith("1 of 3 alerts accepted; refused: ")
    assert "alerts[0].labels.service is 2,000 characters long, at most 1,024" in detail
    assert "alerts[1].labels has 101 entries, at most 64" in detail
    assert len(detail) < 1000
    wait_for(lambda: "Fine" in flood.held(), "the valid alert of the request")
    assert "TooLong" not in flood.held() and "TooMany" not in flood.held()


def test_a_long_text_is_cut_with_a_marker_and_a_huge_body_is_refused(
    sender: tuple[Sender, httpx.Client]
) -> None:
    flood, _ = sender
    wordy = alert("Wordy")
    wordy["annotations"]["summary"] = "w" * (2 * 1024 * 1024)
    assert flood.send([wordy]).status_code == 200
    summary = wait_for(lambda: flood.held().get("Wordy"), "the wordy alert").annotations["summary"]
    assert len(summary) == 4096 and summary.endswith(" … [cut from 2,097,152 characters]")

    huge = alert("Huge")
    huge["annotations"]["summary"] = "h" * (15 * 1024 * 1024)
    answer = flood.send(json.dumps([huge]).encode())
    assert answer.status_code == 413
    assert "larger than 4 MiB (alerting.intake.max_request_bytes)" in answer.json()["detail"]


def test_the_alerts_page_shows_a_hundred_at_a_time_in_a_stable_order(
    sender: tuple[Sender, httpx.Client]
) -> None:
    flood, browser = sender
    flood.send([alert(f"Paged{i:03}", severity="warning") for i in range(250)])
    wait_for(lambda: sum(name.startswith("Paged") for name in flood.held()) == 250, "250 alerts held")

    total = len(flood.held())  # with the other tests' alerts: the serve is the module's
    pages = -(-total // 100)
    shown: list[list[str]] = []
    for number in range(1, pages + 1):
        answer = browser.get("/ui/alerts", params={"page": number})
        assert answer.status_code == 200
        assert len(answer.content) < 250_000
        shown.append(re.findall(r'<tr data-alert="([^"]+)"', answer.text))
    assert [len(rows) for rows in shown] == [100] * (pages - 1) + [total - 100 * (pages - 1)]
    assert f"1–100 of {total:,}" in browser.get("/ui/alerts").text
    names = [name for rows in shown for name in rows]
    assert len(names) == len(set(names)) == total  # every alert once, none twice
    assert shown[0] == re.findall(r'<tr data-alert="([^"]+)"', browser.get("/ui/alerts?page=1").text)
    assert browser.get("/ui/alerts", params={"page": 99}).status_code == 200  # past the end: empty
    assert browser.get("/ui/alerts", params={"page": "x"}).status_code in (400, 422)
