"""`opsplane alerts` tells "no alerts" from "nothing is watching": a real `serve` records each
alerting cycle (when, which process, how often), and the command exits 3 once it stops."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.http_servers import LocalHttpServer, Reply
from tests.support.polling import wait_for
from tests.support.serve import Serve

METRICS = Reply(body=b"# TYPE http_requests_total counter\nhttp_requests_total 7\n")


def _alerts(serve: Serve) -> tuple[int, dict[str, Any]]:
    shown = subprocess.run([sys.executable, "-m", "opsplane", "-c", str(serve.inventory), "alerts", "--json"],
                           cwd=serve.workdir, env=serve.env, capture_output=True, text=True, timeout=60)
    assert shown.stdout, shown.stderr
    return shown.returncode, json.loads(shown.stdout)


def test_a_running_serve_is_named_and_a_stopped_one_makes_the_answer_unknown(tmp_path: Path) -> None:
    with LocalHttpServer({"/metrics": METRICS}) as target:
        (tmp_path / "opsplane.yaml").write_text(
            "platform: {name: shop}\n"
            "defaults: {interval: 300ms, timeout: 1s}\n"
            f"services:\n  payments: {{port: {target.port}, metrics_path: /metrics, checks: []}}\n"
            "alerting: {evaluation_interval: 500ms}\n")
        serve = Serve(tmp_path, tmp_path / "opsplane.yaml")
        serve.start()
        try:
            assert serve.process is not None
            pid = serve.process.pid
            code, answer = wait_for(lambda: (shown := _alerts(serve))[1]["evaluation"]["current"] and shown,
                                    "a first alerting cycle")
            evaluation = answer["evaluation"]
            assert code == 0 and answer["alerts"] == []
            assert (evaluation["host"], evaluation["pid"], evaluation["interval_seconds"]) == (
                socket.gethostname(), pid, 0.5)
            assert evaluation["rules"] > 0 and evaluation["failing"] == []
            assert evaluation["text"].startswith("Rules last evaluated ")
            assert evaluation["text"].endswith(f"by serve on {socket.gethostname()} (pid {pid}, every 0.5s).")
        finally:
            output = serve.stop()
        assert "Traceback" not in output, output
        # three evaluation intervals later nothing has evaluated the rules: unknown
        code, answer = wait_for(lambda: (shown := _alerts(serve))[0] == 3 and shown,
                                "the answer to turn unknown")
        assert "nothing is evaluating them now" in answer["evaluation"]["text"]


def test_a_serve_with_nothing_for_rules_to_read_still_says_it_watches(tmp_path: Path) -> None:
    # nothing scraped and no check failing: alerting is not even loaded, yet serve is watching
    (tmp_path / "opsplane.yaml").write_text(
        "platform: {name: shop}\nservices:\n  orders: {checks: []}\nalerting: {evaluation_interval: 1s}\n")
    serve = Serve(tmp_path, tmp_path / "opsplane.yaml")
    serve.start()
    try:
        code, answer = wait_for(lambda: (shown := _alerts(serve))[1]["evaluation"]["current"] and shown,
                                "serve to record that it watches")
        assert code == 0 and answer["evaluation"]["rules"] == 0
        assert "nothing for them to read yet" in answer["evaluation"]["text"]
    finally:
        output = serve.stop()
    assert "Traceback" not in output, output
