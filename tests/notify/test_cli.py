"""`opsplane notify` as a person runs it: a temporary inventory and SQLite store, real receivers,
the real command in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.receivers import Answer, RecordingReceiver, always

pytestmark = pytest.mark.slow


class Opsplane:
    def __init__(self, tmp_path: Path, named: dict[str, Any], environ: dict[str, str]) -> None:
        self.cwd = tmp_path
        inventory = {"platform": {"name": "shop"},
                     "channels": {"retry": {"first": "100ms", "max": "200ms"}, "named": named}}
        (tmp_path / "opsplane.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        self.env = {"OPSPLANE_DATABASE_URL": f"sqlite:///{tmp_path}/opsplane.db", "PATH": "/usr/bin:/bin",
                    "USER": "ana", "COLUMNS": "200", **environ}

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        ran = subprocess.run([sys.executable, "-m", "opsplane", "-c", "opsplane.yaml", *args],
                             capture_output=True, text=True, env=self.env, cwd=self.cwd, timeout=60)
        assert ran.returncode == code, (ran.stdout, ran.stderr)
        assert "Traceback" not in ran.stderr
        return ran


def test_notify_test_delivers_through_the_outbox_and_outbox_lists_the_refused(tmp_path: Path) -> None:
    with RecordingReceiver() as slack, RecordingReceiver(always(Answer(403, b"invalid_token"))) as hook:
        opsplane = Opsplane(tmp_path, {
            "ops-slack": {"type": "slack", "webhook_url": "env:SLACK_URL"},
            "hook": {"type": "webhook", "url": hook.url("/in")},
        }, {"SLACK_URL": slack.url("/services/T/B/secret")})

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
        opsplane = Opsplane(tmp_path, {"hook": {"type": "webhook", "url": hook.url("/in")}}, {})
        said = opsplane("notify", "test", "hook", "--wait", "1s", code=1).stdout

    assert "not delivered yet" in said and "HTTP 503: down" in said and "stays in the outbox" in said
    assert len(hook.requests) >= 3

