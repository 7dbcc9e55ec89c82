"""Folding audits into findings on a real store, on a clock the test sets: a finding keeps its
first sighting and due time across audits and upgrades that are not yet enough, a re-rating
moves the due time, a failed audit closes nothing, a low finding waits for the next release,
and only the audited service and ecosystem are closed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsplane.config.loader import loads
from opsplane.dependencies import service
from opsplane.dependencies.flows import Audited, sources
from opsplane.dependencies.job import build_report
from opsplane.dependencies.models import FixTimes
from opsplane.dependencies.reported import Reported
from opsplane.dependencies.severity import Rating
from opsplane.errors import ConfigError, UsageError
from opsplane.store import Store

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CRITICAL = Rating("critical", 9.8, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
HIGH = Rating("high", 7.5, "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H")
LOW = Rating("low", 3.1, "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:N/A:N")


def seen(package: str, version: str, vuln: str = "GHSA-aaaa-bbbb-cccc") -> Reported:
    return Reported("PyPI", package, version, vuln, fix_versions=("2.0",))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path}/o.db")
    yield opened
    opened.close()


def fold(store: Store, audited: Audited, now: datetime) -> service.Changes:
    with store.session() as session:
        return service.reconcile(session, audited, now=now, times=FixTimes())


def open_now(store: Store, now: datetime) -> list[dict[str, object]]:
    with store.session() as session:
        return [service.as_dict(r, now) for r in service.open_findings(session)]


def test_a_finding_keeps_its_due_time_across_audits_and_partial_upgrades(store: Store) -> None:
    fold(store, Audited("catalog", "PyPI", found=[(seen("lib", "1.0"), CRITICAL)]), T0)
    changes = fold(store, Audited("catalog", "PyPI", found=[(seen("lib", "1.1"), CRITICAL)]),
                   T0 + timedelta(hours=2))
    assert (len(changes.found), len(changes.still)) == (0, 1)
    (row,) = open_now(store, T0 + timedelta(hours=5))
    assert (row["version"], row["first_seen"], row["due_at"], row["overdue"]) == (
        "1.1", T0.isoformat(), (T0 + timedelta(hours=4)).isoformat(), True)


def test_a_re_rating_moves_the_due_time_from_the_first_sighting(store: Store) -> None:
    fold(store, Audited("catalog", "PyPI", found=[(seen("lib", "1.0"), HIGH)]), T0)
    fold(store, Audited("catalog", "PyPI", found=[(seen("lib", "1.0"), CRITICAL)]), T0 + timedelta(hours=1))
    (row,) = open_now(store, T0 + timedelta(hours=1))
    assert (row["severity"], row["due_at"]) == ("critical", (T0 + timedelta(hours=4)).isoformat())


def test_a_failed_audit_closes_nothing_and_an_audit_closes_only_its_own(store: Store) -> None:
    fold(store, Audited("catalog", "PyPI", found=[(seen("lib", "1.0"), CRITICAL)]), T0)
    npm = Reported("npm", "ms", "1.0.0", "GHSA-w9mr-4mfr-499f")
    fold(store, Audited("catalog", "npm", found=[(npm, LOW)]), T0)
    fold(store, Audited("orders", "PyPI", found=[(seen("lib", "1.0"), CRITICAL)]), T0)
    assert fold(store, Audited("catalog", "PyPI", error="the OSV API did not answer"), T0).fixed == []
    changes = fold(store, Audited("catalog", "PyPI", found=[]), T0 + timedelta(hours=1))
    assert [(r.service, r.ecosystem, r.state) for r in changes.fixed] == [("catalog", "PyPI", "fixed")]
    assert sorted((r["service"], r["ecosystem"]) for r in open_now(store, T0)) == [
        ("catalog", "npm"), ("orders", "PyPI")]


def test_the_report_grades_overdue_due_and_low(store: Store) -> None:
    fold(store, Audited("catalog", "PyPI", found=[(seen("lib", "1.0"), CRITICAL),
                                                  (seen("other", "3.0", "GHSA-dddd-eeee-ffff"), LOW)]), T0)
    fold(store, Audited("orders", "PyPI", found=[(seen("lib", "1.0"), HIGH)]), T0 + timedelta(hours=3))
    now = T0 + timedelta(hours=6)
    with store.session() as session:
        rows = service.open_findings(session)
        audited = [Audited("catalog", "PyPI"), Audited("search", "PyPI", error="no Python interpreter at /x")]
        report = build_report(audited, rows, {"found": 0, "fixed": 0}, now)
    assert [(f.severity, f.subject) for f in report.findings] == [
        ("critical", "catalog: lib"), ("warning", "orders: lib"), ("info", "catalog: other"),
        ("warning", "search: PyPI")]
    assert report.outcome == "critical" and not report.failed
    assert "next release" in report.findings[2].what
    assert "| orders | lib | 1.0 | GHSA-aaaa-bbbb-cccc | high | 7.5 | due in 21 h |" in report.markdown


def test_a_misspelt_dependencies_field_is_located() -> None:
    with pytest.raises(ConfigError) as caught:
        loads("platform: {name: shop}\nservices:\n  catalog:\n    dependencies: {pyhton: .venv}\n")
    assert "opsplane.yaml:4:20: services.catalog.dependencies.pyhton: unknown field" in str(caught.value)


def test_what_each_service_is_audited_in(tmp_path: Path) -> None:
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "package.json").write_text("{}")
    inventory = loads("""
platform: {name: shop}
services:
  storefront:
    kind: frontend
    run: {argv: [node, server.js], cwd: web}
  search:
    dependencies: {requirements: [requirements.lock], npm: ui}
    run: {argv: [python3, -m, search]}
  payments:
    dependencies: {python: /srv/payments/venv}
    run: {argv: [.venv/bin/python, -m, payments], cwd: app}
  gateway:
    run: {argv: [bin/python3.11, -m, gateway], cwd: gw}
""")
    found = [(s.service, s.kind, s.path) for s in sources(inventory, tmp_path)]
    assert found == [
        ("storefront", "npm", tmp_path / "web"),
        ("search", "requirements", tmp_path / "requirements.lock"), ("search", "npm", tmp_path / "ui"),
        ("payments", "environment", Path("/srv/payments/venv")),
        ("gateway", "environment", tmp_path / "gw" / "bin" / "python3.11")]
    with pytest.raises(UsageError, match="no service nope; the services are: storefront, search"):
        sources(inventory, tmp_path, ["nope"])
