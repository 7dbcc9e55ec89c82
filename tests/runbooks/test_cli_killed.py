"""`opsplane runbook` as a person runs it: a dry run records nothing; a run whose process is
killed with SIGKILL in the middle of a step resumes without doing a finished step again, and a
step cut short is run again only when it says it is idempotent, else once a person said it did
not happen."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.cli import Opsplane
from tests.support.polling import wait_for

INVENTORY = {"platform": {"name": "shop"}, "runbooks": {"dir": "runbooks"},
             "services": {"web": {"port": 8000, "checks": [{"type": "tcp"}]}}}
BLOCK = ("import os, pathlib, time\\nif pathlib.Path('started').exists(): print('again')\\nelse:\\n"
         "  pathlib.Path('started').write_text(str(os.getpid())); time.sleep(60)")
# `first` leaves a line per run in first.log; `block` blocks the first time (writing its pid to
# started) and ends at once after that.
BLOCKING = f"""
name: blocking
title: A step that blocks
steps:
  - id: first
    kind: command
    safe: true
    argv: [{sys.executable}, -c, "open('first.log', 'a').write('ran\\\\n')"]
  - id: block
    kind: command
    safe: true
    idempotent: IDEMPOTENT
    argv: [{sys.executable}, -c, "{BLOCK}"]
  - {{id: last, kind: note, text: all done, safe: true}}
"""


def opsplane_with(tmp_path: Path, idempotent: bool) -> Opsplane:
    opsplane = Opsplane(tmp_path, INVENTORY)
    (tmp_path / "runbooks").mkdir()
    text = BLOCKING.replace("IDEMPOTENT", str(idempotent).lower())
    (tmp_path / "runbooks" / "blocking.yaml").write_text(text)
    return opsplane


def steps(opsplane: Opsplane) -> list[tuple[str, int, str | None]]:
    ran = opsplane("runbook", "status", "1", "--json", code=None)  # its code says the run's state
    return [(s["step"], s["attempt"], s["outcome"]) for s in json.loads(ran.stdout)["steps"]]


def kill_mid_step(opsplane: Opsplane, tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "opsplane", "-c", "opsplane.yaml", "runbook", "run",
                                "blocking"], cwd=tmp_path, env=opsplane.env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = tmp_path / "started"

    def blocking() -> bool:
        assert process.poll() is None, process.communicate()
        return started.exists() and bool(started.read_text())

    wait_for(blocking, "the command step to start", timeout=30)
    process.send_signal(signal.SIGKILL)
    process.wait()
    os.kill(int(started.read_text()), signal.SIGKILL)  # the blocked command outlives it; end it too


def test_a_step_cut_short_is_not_run_again_until_a_person_says_it_did_not_happen(tmp_path: Path) -> None:
    opsplane = opsplane_with(tmp_path, idempotent=False)
    kill_mid_step(opsplane, tmp_path)
    assert steps(opsplane) == [("first", 1, "ok"), ("block", 1, None)]

    # nobody answers: the run waits, and nothing ran again
    waiting = opsplane("runbook", "resume", "1", code=1)
    assert "was started and cut short" in waiting.stdout
    assert steps(opsplane) == [("first", 1, "ok"), ("block", 1, None)]
    status = json.loads(opsplane("runbook", "status", "1", "--json", code=1).stdout)
    assert status["state"] == "waiting" and "say whether step block happened" in status["waiting_for"]

    # a person says it did not happen: it runs again, once; the finished step is not repeated
    ran = subprocess.run([sys.executable, "-m", "opsplane", "-c", "opsplane.yaml", "runbook", "resume", "1"],
                         input="n\n", capture_output=True, text=True, env=opsplane.env, cwd=tmp_path,
                         timeout=60)
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    assert steps(opsplane) == [("first", 1, "ok"), ("block", 1, "not_run"), ("block", 2, "ok"),
                               ("last", 1, "ok")]
    assert (tmp_path / "first.log").read_text() == "ran\n"


def test_an_idempotent_step_cut_short_runs_again_by_itself(tmp_path: Path) -> None:
    opsplane = opsplane_with(tmp_path, idempotent=True)
    kill_mid_step(opsplane, tmp_path)
    resumed = opsplane("runbook", "resume", "1")
    assert "run 1 succeeded" in resumed.stdout
    assert steps(opsplane) == [("first", 1, "ok"), ("block", 1, None), ("block", 2, "ok"), ("last", 1, "ok")]
    assert (tmp_path / "first.log").read_text() == "ran\n"
    events = opsplane.json("events", "--kind", "runbook.step")
    assert sorted(e["details"]["step"] for e in events) == ["block", "first", "last"]


def test_a_dry_run_prints_the_steps_and_records_nothing(tmp_path: Path) -> None:
    opsplane = opsplane_with(tmp_path, idempotent=False)
    shown = opsplane("runbook", "run", "blocking", "--dry-run")
    assert "dry run, nothing is run or recorded" in shown.stdout
    assert "first" in shown.stdout and "block" in shown.stdout and "note: all done" in shown.stdout
    assert not (tmp_path / "first.log").exists()
    assert opsplane.json("runbook", "runs") == []
    assert opsplane.json("events") == []


def test_running_needs_the_responder_role(tmp_path: Path) -> None:
    opsplane = opsplane_with(tmp_path, idempotent=False)
    opsplane.env["OPSPLANE_LOCAL_ROLE"] = "viewer"
    refused = opsplane("runbook", "run", "blocking", code=3)
    assert "needs the responder role" in refused.stderr
    assert opsplane.json("runbook", "runs") == []
