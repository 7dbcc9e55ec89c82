"""The dependency audit end to end with real parts: a virtual environment made here with a
vulnerable PyYAML from the package registry, opsplane's OSV API on a loopback port over an
advisory directory, and the real pip-audit. The finding appears with its CVSS score, severity
and due time (first seen + 4 h); five hours later it is overdue and the report is critical, the
series ReportCritical reads says so, and `opsplane audit findings` exits 2; an audit that cannot
reach the OSV API closes nothing; after the package is upgraded the finding is closed as fixed.

Installing from the registry is the one thing here that leaves loopback; where the registry
cannot be reached the test is skipped and says so."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import opsplane
from opsplane.clock import ManualClock
from opsplane.config.loader import loads
from opsplane.dependencies.flows import sources
from opsplane.dependencies.tables import DependencyFindingRow
from opsplane.events.summary import describe
from opsplane.events.tables import Event
from opsplane.reports.jobs import JobEnv, get, run_and_save
from opsplane.reports.worker import FINDINGS, report_samples
from opsplane.store import Store
from tests.dependencies.advisories import serving
from tests.support.cli import Opsplane
from tests.support.http_servers import closed_port

pytestmark = pytest.mark.slow
UNREACHABLE = ("NewConnectionError", "Max retries exceeded", "Temporary failure in name resolution",
               "Network is unreachable", "No matching distribution found", "Could not find a version")
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
# the command run as a subprocess is the opsplane these tests import
HERE = {"PYTHONPATH": str(Path(opsplane.__file__).resolve().parents[1])}


def install(venv: Path, requirement: str) -> None:
    """pip-install `requirement` into `venv` from the registry; skip when it cannot be reached."""
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement],
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        if any(word in done.stderr for word in UNREACHABLE):
            pytest.skip(f"the package registry cannot be reached to install {requirement}: "
                        f"{done.stderr.strip().splitlines()[-1]}")
        raise AssertionError(done.stderr)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalog") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    install(root, "PyYAML==5.3.1")
    return root


@pytest.fixture
def osv_api(tmp_path: Path) -> Iterator[str]:
    with serving(tmp_path / "osv") as url:
        yield url


def inventory_text(venv: Path, osv_url: str) -> str:
    return f"""
platform: {{name: shop}}
services:
  catalog:
    dependencies: {{python: {venv}}}
  orders:
    run: {{argv: ["{venv}/bin/python", "-m", "http.server", "{{port}}"]}}
  gateway: {{}}
vulnerabilities: {{osv_url: "{osv_url}"}}
jobs: {{}}
"""


def open_rows(store: Store) -> list[DependencyFindingRow]:
    with store.session() as session:
        return list(session.scalars(select(DependencyFindingRow).where(DependencyFindingRow.state == "open")
                                    .order_by(DependencyFindingRow.service)))


def events(store: Store, kind: str) -> list[str]:
    with store.session() as session:
        query = select(Event).where(Event.kind == kind).order_by(Event.id)
        return [describe(e) for e in session.scalars(query)]


def test_sources_are_the_named_environment_or_the_interpreter_run_starts(venv: Path) -> None:
    inventory = loads(inventory_text(venv, "http://127.0.0.1:1"))
    found = [(s.service, s.kind, s.path) for s in sources(inventory, Path("/srv"))]
    assert found == [("catalog", "environment", venv), ("orders", "environment", venv / "bin" / "python")]


def test_the_command_audits_now_and_gives_the_manuals_due_time(venv: Path, osv_api: str,
                                                               tmp_path: Path) -> None:
    cli = Opsplane(tmp_path, {"platform": {"name": "shop"}, "vulnerabilities": {"osv_url": osv_api},
                              "services": {"catalog": {"dependencies": {"python": str(venv)}}}}, environ=HERE)
    ran = cli("audit", "deps", "--json", code=1)  # found, within its fix time
    found = json.loads(ran.stdout)["findings"]
    assert [(f["service"], f["package"], f["severity"], f["overdue"]) for f in found] == [
        ("catalog", "pyyaml", "critical", False)]
    seen, due = datetime.fromisoformat(found[0]["first_seen"]), datetime.fromisoformat(found[0]["due_at"])
    assert due - seen == timedelta(hours=4)


def test_found_rated_overdue_kept_through_an_outage_and_fixed(venv: Path, osv_api: str,
                                                              tmp_path: Path) -> None:
    inventory = loads(inventory_text(venv, osv_api))
    store = Store.open(f"sqlite:///{tmp_path}/opsplane.db")
    clock = ManualClock(START)
    job = get("deps-audit")
    assert job.cron == "0 10 * * 1"

    def audit(environ: dict[str, str] | None = None) -> dict[str, object]:
        row = run_and_save(job, JobEnv(inventory, tmp_path, store, clock, environ=environ or {}),
                           trigger="schedule", requested_by="opsplane")
        return {"outcome": row.outcome, "counts": dict(row.counts), "findings": list(row.findings)}

    # found: both services run the vulnerable PyYAML; rated 9.8 from the advisory's vector
    first = audit()
    rows = open_rows(store)
    assert [(r.service, r.package, r.version, r.severity, r.cvss_score) for r in rows] == [
        ("catalog", "pyyaml", "5.3.1", "critical", 9.8), ("orders", "pyyaml", "5.3.1", "critical", 9.8)]
    assert {rows[0].vuln_id, *rows[0].aliases} == {"CVE-2020-14343", "GHSA-8q59-q68h-6hv4"}
    assert rows[0].fix_versions == ["5.4"]
    assert all(r.first_seen == START and r.due_at == START + timedelta(hours=4) for r in rows)
    assert first["outcome"] == "warning" and first["counts"]["warning"] == 2
    assert events(store, "deps.found")[0] == (
        "catalog: pyyaml 5.3.1 has CVE-2020-14343 (fixed in 5.4), critical, CVSS 9.8; "
        "fix by 2026-03-02 14:00 UTC")

    # five hours later, still there: overdue, the report critical, the series ReportCritical reads
    clock.advance(5 * 3600)
    later = audit()
    rows = open_rows(store)
    assert all(r.first_seen == START and r.due_at == START + timedelta(hours=4) for r in rows)
    assert later["outcome"] == "critical" and later["counts"]["critical"] == 2
    assert "overdue by 60 min" in later["findings"][0]["what"]
    series = report_samples({"deps-audit": (str(later["outcome"]), dict(later["counts"]))}, env="production")
    assert [(dict(labels)["severity"], value) for labels, value in series
            if dict(labels)["__name__"] == FINDINGS] == [("critical", 2.0)]
    assert len(events(store, "deps.found")) == 2  # seen again is not found again

    (tmp_path / "cli").mkdir()
    cli = Opsplane(tmp_path / "cli", {"platform": {"name": "shop"}},
                   environ={**HERE, "OPSPLANE_DATABASE_URL": f"sqlite:///{tmp_path}/opsplane.db"})
    listed = cli("audit", "findings", "--json", code=2)
    assert '"overdue": true' in listed.stdout
    assert "overdue by" in cli("audit", "deps", "--list", code=2).stdout

    # the OSV API unreachable: the audit fails with the reason and closes nothing
    outage = audit({"OPSPLANE_OSV_URL": f"http://127.0.0.1:{closed_port()}"})
    assert outage["outcome"] == "failed"
    assert len(open_rows(store)) == 2 and events(store, "deps.fixed") == []

    # upgraded past the fix: closed as fixed, late
    install(venv, "PyYAML>=5.4")
    clock.advance(600)
    fixed = audit()
    assert open_rows(store) == [] and fixed["outcome"] == "ok"
    with store.session() as session:
        closed = list(session.scalars(select(DependencyFindingRow)))
    assert [(r.state, r.fixed_at) for r in closed] == [("fixed", START + timedelta(hours=5, minutes=10))] * 2
    assert events(store, "deps.fixed")[0] == (
        "catalog: CVE-2020-14343 in pyyaml fixed after 5 h 10 min, later than its due time")
    store.close()
