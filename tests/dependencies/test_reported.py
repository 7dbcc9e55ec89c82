"""Reading what the audit tools write: pip-audit's JSON and npm 7+'s `npm audit --json`, and a
real `npm audit` that cannot reach its registry read as a reason, not as a clean project."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from opsplane.dependencies.flows import Source, run_npm_audit
from opsplane.dependencies.models import VulnerabilitySettings
from opsplane.dependencies.reported import Reported, ToolOutputError, npm_audit, pip_audit
from tests.support.http_servers import closed_port

PIP_AUDIT = {
    "dependencies": [
        {"name": "pip", "version": "23.2.1", "vulns": []},
        {"name": "pyyaml", "version": "5.3.1", "vulns": [
            {"id": "CVE-2020-14343", "fix_versions": ["5.4"], "aliases": ["GHSA-8q59-q68h-6hv4"],
             "description": "Improper Input Validation in PyYAML"}]},
        {"name": "private-lib", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ],
    "fixes": [],
}
NPM_AUDIT = {
    "auditReportVersion": 2,
    "vulnerabilities": {
        "minimist": {
            "name": "minimist", "severity": "critical", "isDirect": True,
            "via": [{"source": 1096419, "name": "minimist", "dependency": "minimist",
                     "title": "Prototype Pollution in minimist",
                     "url": "https://github.com/advisories/GHSA-xvch-5gv4-984h", "severity": "critical",
                     "cwe": ["CWE-1321"],
                     "cvss": {"score": 9.8, "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"},
                     "range": "<0.2.4"}],
            "effects": ["mkdirp"], "range": "<=0.2.3", "nodes": ["node_modules/minimist"],
            "fixAvailable": {"name": "minimist", "version": "0.2.4", "isSemVerMajor": False}},
        "mkdirp": {
            "name": "mkdirp", "severity": "critical", "isDirect": False, "via": ["minimist"], "effects": [],
            "range": "0.4.1 - 0.5.1", "nodes": ["node_modules/mkdirp"], "fixAvailable": True},
        "ms": {
            "name": "ms", "severity": "moderate", "isDirect": True,
            "via": [{"source": 1094419, "name": "ms",
                     "title": "Inefficient Regular Expression Complexity in ms",
                     "url": "https://github.com/advisories/GHSA-w9mr-4mfr-499f", "severity": "moderate",
                     "cvss": {"score": 0, "vectorString": None}, "range": "<2.0.0"}],
            "effects": [], "range": "<2.0.0", "nodes": ["node_modules/ms"], "fixAvailable": False},
    },
    "metadata": {"vulnerabilities": {"critical": 2, "moderate": 1, "total": 3}},
}


def test_pip_audit_json() -> None:
    found, skipped = pip_audit(json.dumps(PIP_AUDIT))
    assert found == [Reported("PyPI", "pyyaml", "5.3.1", "CVE-2020-14343", ("GHSA-8q59-q68h-6hv4",),
                              "Improper Input Validation in PyYAML", ("5.4",))]
    assert found[0].rating is None  # rated from its OSV record
    assert skipped == ["private-lib: Dependency not found on PyPI and could not be audited"]


def test_what_is_not_pip_audits_json_is_refused() -> None:
    with pytest.raises(ToolOutputError, match="did not write JSON"):
        pip_audit("ERROR:pip_audit._cli:Connection refused")
    with pytest.raises(ToolOutputError, match="dependencies"):
        pip_audit("[]")


def test_npm_audit_json_keeps_advisories_not_the_packages_that_merely_depend() -> None:
    found = npm_audit(json.dumps(NPM_AUDIT), {"minimist": "0.0.8"})
    assert [(f.package, f.version, f.vuln_id, f.fix_versions) for f in found] == [
        ("minimist", "0.0.8", "GHSA-xvch-5gv4-984h", ("0.2.4",)),
        ("ms", "<2.0.0", "GHSA-w9mr-4mfr-499f", ())]
    minimist, ms = found
    assert minimist.rating is not None
    assert (minimist.rating.score, minimist.rating.severity) == (9.8, "critical")
    assert ms.rating is not None and (ms.rating.severity, ms.rating.source) == ("medium", "advisory")


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_npm_audit_that_cannot_reach_its_registry_is_a_reason(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "package.json").write_text(json.dumps(
        {"name": "storefront", "version": "1.0.0", "dependencies": {"minimist": "0.0.8"}}))
    (tmp_path / "package-lock.json").write_text(json.dumps({
        "name": "storefront", "version": "1.0.0", "lockfileVersion": 3, "requires": True, "packages": {
            "": {"name": "storefront", "version": "1.0.0", "dependencies": {"minimist": "0.0.8"}},
            "node_modules/minimist": {"version": "0.0.8"}}}))
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{closed_port()}/")
    with pytest.raises(ToolOutputError, match="npm audit failed: .*ECONNREFUSED"):
        run_npm_audit(Source("storefront", "npm", tmp_path), VulnerabilitySettings())
