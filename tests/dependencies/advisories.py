"""OSV records written from the public advisories' facts (id, aliases, affected ranges, CVSS
vector), as OSV's exports hold them: the data the tests' OSV API serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PYYAML_FULL_LOAD: dict[str, Any] = {
    "schema_version": "1.4.0",
    "id": "GHSA-8q59-q68h-6hv4",
    "modified": "2024-01-01T00:00:00Z",
    "published": "2021-03-31T00:00:00Z",
    "aliases": ["CVE-2020-14343"],
    "summary": "Improper Input Validation in PyYAML",
    "details": "A vulnerability was discovered in the PyYAML library in versions before 5.4, where it is "
               "susceptible to arbitrary code execution when it processes untrusted YAML files through the "
               "full_load method or with the FullLoader loader.",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "pyyaml"},
                  "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "5.4"}]}]}],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    "database_specific": {"severity": "CRITICAL", "cwe_ids": ["CWE-20"]},
}

URLLIB3_REDOS: dict[str, Any] = {
    "schema_version": "1.4.0",
    "id": "GHSA-q2q7-5pp4-w6pg",
    "modified": "2024-01-01T00:00:00Z",
    "aliases": ["CVE-2021-33503"],
    "summary": "Catastrophic backtracking in URL authority parser when passed URL containing many @ "
               "characters",
    "affected": [{"package": {"ecosystem": "PyPI", "name": "urllib3"},
                  "ranges": [{"type": "ECOSYSTEM",
                              "events": [{"introduced": "1.25.4"}, {"fixed": "1.26.5"}]}]}],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
    "database_specific": {"severity": "HIGH"},
}


def write(directory: Path, *records: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for record in records:
        (directory / f"{record['id']}.json").write_text(json.dumps(record))
    return directory


@contextmanager
def serving(directory: Path) -> Iterator[str]:
    """opsplane's OSV API over both advisories, written to `directory`, on a free loopback
    port: its base address."""
    from opsplane.dependencies.osv import load
    from opsplane.dependencies.osv_server import OsvServer

    server = OsvServer(load([write(directory, PYYAML_FULL_LOAD, URLLIB3_REDOS)]))
    server.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
