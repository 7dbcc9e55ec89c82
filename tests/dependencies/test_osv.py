"""Which versions an OSV record affects, and opsplane's OSV API over a directory or an export
zip, asked over loopback HTTP the way pip-audit and api.osv.dev's clients ask."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import opsplane
from opsplane.dependencies.osv import Advisories, affects, load
from opsplane.dependencies.severity import rate_osv
from opsplane.drivers.sandbox.ports import free_port
from opsplane.errors import UsageError
from tests.dependencies.advisories import PYYAML_FULL_LOAD, URLLIB3_REDOS, serving, write
from tests.support.polling import wait_for

TWO_RANGES = {
    "id": "PYSEC-0000-1",
    "affected": [{
        "package": {"ecosystem": "PyPI", "name": "Some_Package"},
        "ranges": [{"type": "ECOSYSTEM", "events": [
            {"introduced": "0"}, {"fixed": "1.4"}, {"introduced": "2.0"}, {"last_affected": "2.1.3"}]}],
        "versions": ["3.0rc1"]}],
}


@pytest.mark.parametrize(("version", "hit"), [
    ("0.1", True), ("1.3.9", True), ("1.4", False), ("1.9", False), ("2.0", True), ("2.1.3", True),
    ("2.1.4", False), ("3.0rc1", True), ("3.0", False)])
def test_ranges_and_versions_of_a_record(version: str, hit: bool) -> None:
    assert affects(TWO_RANGES, "PyPI", "some-package", version) is hit


def test_pypi_names_compare_in_their_normal_form_and_ecosystems_apart() -> None:
    assert affects(TWO_RANGES, "PyPI", "SOME.package", "1.0")
    assert not affects(TWO_RANGES, "npm", "Some_Package", "1.0")
    assert affects(PYYAML_FULL_LOAD, "PyPI", "PyYAML", "5.3.1")
    assert not affects(PYYAML_FULL_LOAD, "PyPI", "PyYAML", "5.4")
    assert not affects(URLLIB3_REDOS, "PyPI", "urllib3", "1.25.3")  # introduced later


def test_a_record_is_rated_by_its_vector_else_by_its_word() -> None:
    rated = rate_osv(PYYAML_FULL_LOAD)
    assert (rated.severity, rated.score, rated.source) == ("critical", 9.8, "cvss")
    word_only = {**URLLIB3_REDOS, "severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:N"}],
                 "database_specific": {"severity": "MODERATE"}}
    assert (rate_osv(word_only).severity, rate_osv(word_only).source) == ("medium", "advisory")
    assert rate_osv({"id": "X"}).source == "unrated"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[str]:
    with serving(tmp_path / "osv") as url:
        yield url


def test_query_answers_the_records_that_affect_a_version(api: str) -> None:
    hit = httpx.post(f"{api}/v1/query", content=json.dumps(
        {"package": {"name": "PyYAML", "ecosystem": "PyPI"}, "version": "5.3.1"}))
    assert hit.status_code == 200
    assert [v["id"] for v in hit.json()["vulns"]] == ["GHSA-8q59-q68h-6hv4"]
    assert hit.json()["vulns"][0]["severity"][0]["score"].startswith("CVSS:3.1/")
    clean = httpx.post(f"{api}/v1/query", json={"package": {"name": "pyyaml", "ecosystem": "PyPI"},
                                                 "version": "6.0.1"})
    assert clean.json() == {}
    by_purl = httpx.post(f"{api}/v1/query", json={"package": {"purl": "pkg:pypi/urllib3@1.26.4"}})
    assert [v["id"] for v in by_purl.json()["vulns"]] == ["GHSA-q2q7-5pp4-w6pg"]


def test_querybatch_answers_ids_per_query(api: str) -> None:
    answer = httpx.post(f"{api}/v1/querybatch", json={"queries": [
        {"package": {"name": "urllib3", "ecosystem": "PyPI"}, "version": "1.26.4"},
        {"package": {"name": "urllib3", "ecosystem": "PyPI"}, "version": "1.26.5"}]})
    assert answer.json() == {"results": [
        {"vulns": [{"id": "GHSA-q2q7-5pp4-w6pg", "modified": "2024-01-01T00:00:00Z"}]}, {}]}


def test_a_record_by_id_and_what_is_refused(api: str) -> None:
    assert httpx.get(f"{api}/v1/vulns/GHSA-8q59-q68h-6hv4").json()["aliases"] == ["CVE-2020-14343"]
    missing = httpx.get(f"{api}/v1/vulns/GHSA-xxxx-xxxx-xxxx")
    assert missing.status_code == 404
    by_commit = httpx.post(f"{api}/v1/query", json={"commit": "6879efc2c1596d11a6a6ad296f80063b558d5e0f"})
    assert by_commit.status_code == 400 and "commit" in by_commit.json()["message"]
    assert httpx.post(f"{api}/v1/query", content=b"{not json").status_code == 400


def test_an_export_zip_loads_like_a_directory(tmp_path: Path) -> None:
    archive = tmp_path / "PyPI-all.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for record in (PYYAML_FULL_LOAD, URLLIB3_REDOS):
            out.writestr(f"{record['id']}.json", json.dumps(record))
    advisories = load([archive])
    assert len(advisories) == 2
    assert [r["id"] for r in advisories.query("PyPI", "urllib3", "1.26.0")] == ["GHSA-q2q7-5pp4-w6pg"]


def test_a_file_that_is_no_record_is_named(tmp_path: Path) -> None:
    write(tmp_path / "osv", PYYAML_FULL_LOAD)
    (tmp_path / "osv" / "broken.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match="broken.json: not an OSV record"):
        load([tmp_path / "osv"])
    with pytest.raises(UsageError, match="no such directory"):
        load([tmp_path / "absent"])
    assert len(Advisories()) == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_osv_serve_command_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    here = str(Path(opsplane.__file__).resolve().parents[1])
    records = write(tmp_path / "osv", PYYAML_FULL_LOAD)
    process = subprocess.Popen(
        [sys.executable, "-m", "opsplane", "audit", "osv-serve", str(records), "--port", str(port),
         "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": here, "COLUMNS": "200"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), "opsplane audit osv-serve to answer")
        answer = httpx.post(f"{url}/v1/query", json={"package": {"name": "pyyaml", "ecosystem": "PyPI"},
                                                      "version": "5.3"})
        assert [v["id"] for v in answer.json()["vulns"]] == ["GHSA-8q59-q68h-6hv4"]
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert f"serving 1 advisories on {url}" in stdout
