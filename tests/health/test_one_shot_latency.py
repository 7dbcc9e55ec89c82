"""`opsplane health` runs every check at once in one event loop. The latency a check reports
must be its own network exchange, not the time the loop spent on the others meanwhile:
building their probes, importing their drivers, loading their CA files."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.http_servers import closed_port
from tests.support.nginx import LocalNginx

pytestmark = pytest.mark.slow

HTTP_CHECKS = 50
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def _inventory(nginx: LocalNginx, directory: Path) -> dict[str, Any]:
    """50 HTTP checks against nginx, then checks that are slow to set up: each https check
    loads its own copy of the system's CA bundle (tens of milliseconds each), and the first
    postgres, redis and tls checks import their drivers. They probe a closed port: only
    their set-up matters here."""
    services: dict[str, Any] = {
        f"s{i}": {"kind": "api", "url": nginx.url(), "checks": [{"type": "http", "path": f"/t/{i}"}]}
        for i in range(HTTP_CHECKS)
    }
    port = closed_port()
    for i in range(5):
        bundle = directory / f"ca-{i}.pem"
        shutil.copyfile(CA_BUNDLE, bundle)
        services[f"secure{i}"] = {"kind": "api", "port": port, "checks": [
            {"type": "http", "scheme": "https", "ca_file": str(bundle)}]}
    services["certificate"] = {"kind": "api", "port": port, "checks": [{"type": "tls"}]}
    return {
        "platform": {"name": "shop"},
        "services": services,
        "databases": {"orders-db": {"port": port, "checks": [{"type": "postgres"}]}},
        "caches": {"sessions": {"port": port, "checks": [{"type": "redis"}]}},
    }


def _http_latencies(directory: Path, *args: str) -> list[float]:
    """The latency_ms of every OK check against nginx in one `opsplane health --json` run."""
    ran = subprocess.run([sys.executable, "-m", "opsplane", "-c", "opsplane.yaml", "health",
                          "--json", *args], capture_output=True, text=True, cwd=directory,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert "Traceback" not in ran.stderr, ran.stderr
    report = json.loads(ran.stdout)
    return [check["metrics"]["latency_ms"] for service in report["services"]
            for check in service["checks"] if check["target"].startswith("http://")
            and check["state"] == "OK"]


@pytest.mark.skipif(not CA_BUNDLE.exists(), reason="no system CA bundle to load")
def test_checks_run_together_report_about_what_a_lone_check_measures(tmp_path: Path) -> None:
    with LocalNginx(tmp_path / "nginx") as nginx:
        inventory = _inventory(nginx, tmp_path)
        (tmp_path / "opsplane.yaml").write_text(yaml.safe_dump(inventory, sort_keys=False))
        # On a shared machine other work can only add time, never take it away: the best of
        # a few runs is the figure least disturbed, alone and together alike.
        lone = min(_http_latencies(tmp_path, "--service", "s0")[0] for _ in range(3))
        bound = 3 * lone + 10
        together: list[float] = []
        for _ in range(5):
            latencies = _http_latencies(tmp_path)
            assert len(latencies) == HTTP_CHECKS
            together.append(statistics.median(latencies))
            if together[-1] <= bound:
                break
    # Before probes were built ahead of the run and started one per turn of the loop, the
    # median was the set-up time of the others: 100 ms and more, against ~1 ms alone.
    assert min(together) <= bound, f"alone {lone:.2f} ms; together, medians {together} ms"
