"""TemporaryPrometheus: imported samples are queryable through the real HTTP API, bad input
is reported with promtool's reason, and nothing outlives stop()."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from opsplane.drivers.sandbox import SandboxError
from opsplane.drivers.sandbox.prometheus import TemporaryPrometheus, openmetrics_text

pytestmark = pytest.mark.slow

DAY = 1768435200.0  # 2026-01-15T00:00:00Z, far behind any head block


def _counter(job: str, per_step: float) -> tuple[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
    labels = (("__name__", "requests_total"), ("job", job))
    return labels, [(DAY + 15 * i, per_step * i) for i in range(41)]


def test_imported_samples_answer_instant_and_range_queries(tmp_path: Path) -> None:
    prometheus = TemporaryPrometheus(tmp_path)
    prometheus.import_openmetrics(openmetrics_text([_counter("api", 3.0), _counter("web", 1.5)]))
    with prometheus:
        instant = prometheus.query('requests_total{job="api"}', DAY + 600)
        assert instant["resultType"] == "vector"
        assert [(r["metric"]["job"], r["value"][1]) for r in instant["result"]] == [("api", "120")]

        rates = prometheus.query("sum by (job) (rate(requests_total[5m]))", DAY + 600)
        by_job = {r["metric"]["job"]: float(r["value"][1]) for r in rates["result"]}
        assert by_job == pytest.approx({"api": 0.2, "web": 0.1})

        matrix = prometheus.query_range('requests_total{job="web"}', DAY, DAY + 60, 30)
        assert matrix["resultType"] == "matrix"
        assert matrix["result"][0]["values"] == [[DAY, "0"], [DAY + 30, "3"], [DAY + 60, "6"]]


def test_last_sample_is_visible_for_the_five_minute_lookback_only(tmp_path: Path) -> None:
    prometheus = TemporaryPrometheus(tmp_path)
    prometheus.import_openmetrics(openmetrics_text([_counter("api", 1.0)]))  # last sample DAY+600
    with prometheus:
        # Prometheus 2.x includes the sample exactly 5 minutes old; 1 ms later it is gone.
        assert prometheus.query("requests_total", DAY + 900)["result"]
        assert prometheus.query("requests_total", DAY + 900.001)["result"] == []


def test_the_server_reports_its_version(tmp_path: Path) -> None:
    with TemporaryPrometheus(tmp_path) as prometheus:
        assert prometheus.major_version() >= 2
        assert prometheus.version().startswith(f"{prometheus.major_version()}.")


def test_a_refused_query_names_prometheus_reason(tmp_path: Path) -> None:
    with TemporaryPrometheus(tmp_path) as prometheus, pytest.raises(SandboxError, match="bad_data"):
        prometheus.query("sum(", DAY)


def test_garbage_openmetrics_is_refused_with_promtools_reason(tmp_path: Path) -> None:
    prometheus = TemporaryPrometheus(tmp_path)
    with pytest.raises(SandboxError, match="promtool could not"):
        prometheus.import_openmetrics("this is { not openmetrics\n")


def test_importing_into_a_running_server_is_refused(tmp_path: Path) -> None:
    with TemporaryPrometheus(tmp_path) as prometheus, pytest.raises(SandboxError, match="before starting"):
        prometheus.import_openmetrics(openmetrics_text([_counter("api", 1.0)]))


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    prometheus = TemporaryPrometheus(tmp_path).start()
    pid = prometheus.pid
    assert pid is not None and psutil.pid_exists(pid)
    prometheus.stop()
    prometheus.stop()
    assert not prometheus.running
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(SandboxError, match="not running"):
        prometheus.query("up", DAY)


def test_scrape_targets_off_loopback_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="not on loopback"):
        TemporaryPrometheus(tmp_path, scrape_targets=["10.0.0.5:9100"])
    with pytest.raises(SandboxError, match="must be positive"):
        TemporaryPrometheus(tmp_path, scrape_targets=["127.0.0.1:9100"], scrape_interval=0)
