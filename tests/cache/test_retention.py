"""Log retention over real files whose modification times are set, at an injected time."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsplane.clock import ManualClock
from opsplane.config.models import Inventory
from opsplane.runtime.retention import apply, retention_job, retentions

NOW = datetime(2026, 3, 1, 3, 30, tzinfo=UTC)


def inventory(**web_logs: object) -> Inventory:
    return Inventory.model_validate({
        "platform": {"name": "t"},
        "services": {
            "web": {"port": 8001, "proxy": "edge", "run": {"argv": ["web"], "logs": web_logs}},
            "api": {"run": {"argv": ["api"]}},
        },
        "proxies": {"edge": {"port": 8000}},
    })


def write(log_dir: Path, name: str, size: int, age_days: float) -> Path:
    path = log_dir / name
    path.write_bytes(b"x" * size)
    when = (NOW - timedelta(days=age_days)).timestamp()
    os.utime(path, (when, when))
    return path


def test_default_retention_is_30_days_for_services_and_90_for_proxies() -> None:
    assert retentions(inventory()) == {"web": 30 * 86400, "api": 30 * 86400, "edge": 90 * 86400}
    assert retentions(inventory(retention="7d"))["web"] == 7 * 86400


def test_rotated_files_past_their_retention_are_deleted_and_counted(tmp_path: Path) -> None:
    current = write(tmp_path, "api.0.log", 10, 400)  # being written: never deleted, however old
    young = write(tmp_path, "api.0.log.1", 100, 29)
    old = [write(tmp_path, "api.0.log.2", 300, 31), write(tmp_path, "api.1.log.5", 200, 45)]
    track = write(tmp_path, "web@v2.0.log.3", 50, 8)  # a track's files follow their service
    proxy_young = write(tmp_path, "edge.0.log.1", 1000, 60)
    proxy_old = write(tmp_path, "edge.0.log.2", 4000, 91)
    other = write(tmp_path, "notes.txt", 5, 400)

    removed = apply(tmp_path, inventory(retention="7d"), NOW)

    assert removed.files == {"api": 2, "web": 1, "edge": 1}
    assert removed.bytes == {"api": 500, "web": 50, "edge": 4000}
    assert not any(p.exists() for p in [*old, track, proxy_old])
    assert all(p.exists() for p in [current, young, proxy_young, other])
    assert removed.kept == {"api": 1, "edge": 1}


def test_the_job_reports_what_it_removed_from_the_runtimes_log_directory(tmp_path: Path) -> None:
    from opsplane.reports.jobs import JobEnv

    log_dir = tmp_path / ".opsplane" / "run" / "logs"
    log_dir.mkdir(parents=True)
    write(log_dir, "api.0.log.1", 2048, 40)
    write(log_dir, "api.0.log.2", 1024, 10)
    env = JobEnv(inventory(), tmp_path, store=None, clock=ManualClock(NOW))  # type: ignore[arg-type]
    report = retention_job(env)
    assert report is not None and report.outcome == "ok"
    assert report.summary == "removed 1 rotated log file (2 KiB)"
    assert report.body["services"]["api"] == {"retention_seconds": 30 * 86400, "removed_files": 1,
                                              "removed_bytes": 2048, "rotated_files_left": 1}
    again = retention_job(env)
    assert again is not None and again.summary == "no rotated log file was past its retention"
