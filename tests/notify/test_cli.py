"""`opsplane notify` as a person runs it: a temporary inventory and SQLite store, real receivers,
the real command in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Opsplane
from tests.support.receivers import Answer, RecordingReceiver, always

pytestmark = pytest.mark.slow


def _inventory(named: dict[str, Any]) -> dict[str, Any]:
    return {"platform": {"name": "shop"},
            "channels": {"retry": {"first": "100ms", "max": "200ms"}, "named": named}}


def test_notify_test_delivers_through_the_outbox_and_outbox_lists_the_refused(tmp_path: Path) -> None:
    with RecordingReceiver() as slack, RecordingReceiver(always(Answer(403, b"invalid_token"))) as hook:
        opsplane = Opsplane(tmp_path, _inventory({
            "ops-slack": {"type": "slack", "webhook_url": "env:SLACK_URL"},
            "hook": {"type": "webhook", "url": hook.url("/in")},
        }), {"SLACK_URL": slack.url("/services/T/B/secret")})

        said = opsplane("notify", "test", "ops-slack").stdout
        refused = json.loads(opsplane("notify", "test", "hook", "--json", code=2).stdout)
        listed = json.loads(opsplane("notify", "outbox", "--json", code=1).stdout)
        table = opsplane("notify", "outbox", "--all", code=1).stdout
        unknown = opsplane("notify", "test", "ops-slak", code=3).stderr

    assert "delivered to ops-slack (1 attempt)" in said
    [posted] = slack.accepted
    assert posted.json()["text"].endswith("[P2] Test notification to ops-slack")
    assert (refused["state"], refused["last_error"]) == ("failed", "HTTP 403: invalid_token")
    assert [(row["channel"], row["state"]) for row in listed] == [("hook", "failed")]
    assert "delivered" in table and "failed" in table
    assert "did you mean 'ops-slack'" in unknown
    assert "secret" not in (tmp_path / "opsplane.yaml").read_text()


def test_notify_test_reports_a_receiver_that_stays_down_and_keeps_the_row(tmp_path: Path) -> None:
    with RecordingReceiver(always(Answer(503, b"down"))) as hook:
        opsplane = Opsplane(tmp_path, _inventory({"hook": {"type": "webhook", "url": hook.url("/in")}}))
        said = opsplane("notify", "test", "hook", "--wait", "1s", code=1).stdout

    assert "not delivered yet" in said and "HTTP 503: down" in said and "stays in the outbox" in said
    assert len(hook.requests) >= 3

