"""The cache report and log retention as scheduled jobs: their cadence, and a run kept as a report."""

from __future__ import annotations

from pathlib import Path

from opsplane.clock import ManualClock
from opsplane.config.models import Inventory
from opsplane.drivers.sandbox.redis import TemporaryRedis
from opsplane.reports import jobs
from opsplane.reports.models import JobsSettings
from opsplane.store import Store


def test_the_cache_report_runs_on_wednesdays_and_log_retention_every_night() -> None:
    planned = jobs.planned(JobsSettings())
    assert planned["cache-report"] == ("0 10 * * 3", "UTC")
    assert planned["log-retention"] == ("30 3 * * *", "UTC")


def test_a_run_of_the_cache_report_is_kept_with_its_findings(tmp_path: Path) -> None:
    with TemporaryRedis(tmp_path / "redis") as server:
        client = server.client()
        client.set("big", "b" * (3 * 2**20))
        client.close()
        inventory = Inventory.model_validate({"platform": {"name": "t"},
                                              "caches": {"redis": {"port": server.port}}})
        store = Store.open(f"sqlite:///{tmp_path}/store.db")
        try:
            env = jobs.JobEnv(inventory, tmp_path, store, ManualClock(), environ={})
            row = jobs.run_and_save(jobs.get("cache-report"), env, trigger="cli", requested_by="cli:ana")
            assert row is not None
            assert (row.job, row.outcome, row.subject) == ("cache-report", "warning", "redis")
            assert [f["what"].split(" (")[0] for f in row.findings if f["severity"] == "warning"] == [
                "big key 'big' in db 0"]
            assert "## redis (redis://127.0.0.1:" in row.markdown
        finally:
            store.close()


def test_the_jobs_have_nothing_to_look_at_without_caches_or_services(tmp_path: Path) -> None:
    env = jobs.JobEnv(Inventory.model_validate({"platform": {"name": "t"}}), tmp_path,
                      store=None, clock=ManualClock())  # type: ignore[arg-type]
    assert jobs.run_job(jobs.get("cache-report"), env) is None
    assert jobs.run_job(jobs.get("log-retention"), env) is None
