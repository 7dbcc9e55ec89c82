"""Auditing the services' packages for real: which environments, requirement files and npm
projects the inventory names, pip-audit and `npm audit` run on them as argument lists, and each
vulnerability rated from its record on the OSV API. Nothing here raises for what it cannot reach:
a source that could not be audited carries the reason, and its service's findings are left as
they were (`service.reconcile` only closes what an audit that ran no longer reports)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from opsplane.config.models import Inventory, Service
from opsplane.dependencies import reported as tool_output
from opsplane.dependencies.models import OSV_URL_ENV, VulnerabilitySettings
from opsplane.dependencies.reported import Reported, ToolOutputError
from opsplane.dependencies.severity import UNRATED, Rating, rate_osv
from opsplane.errors import UsageError

PYTHON_NAME = re.compile(r"(^|/)python[0-9.]*$")
SITE_PATHS = ("import json, sysconfig; p = sysconfig.get_paths(); "
              "print(json.dumps(sorted({p['purelib'], p['platlib']})))")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Source:
    """One thing to audit: a Python environment (its interpreter), a requirement file, or an
    npm project directory, of one service."""

    service: str
    kind: str  # environment | requirements | npm
    path: Path

    @property
    def ecosystem(self) -> str:
        return "npm" if self.kind == "npm" else "PyPI"

    def describe(self) -> str:
        return f"{self.kind} {self.path}"


@dataclass
class Audited:
    """What the audit of one service's packages of one ecosystem found, or why it could not."""

    service: str
    ecosystem: str
    sources: list[str] = field(default_factory=list)
    found: list[tuple[Reported, Rating]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str | None = None


def osv_url(settings: VulnerabilitySettings, environ: Mapping[str, str]) -> str:
    """The OSV API's base address: the environment's override, else the inventory's."""
    return (environ.get(OSV_URL_ENV) or settings.osv_url).rstrip("/")


def _interpreter_of_run(service: Service, base_dir: Path) -> Path | None:
    if service.run is None or not PYTHON_NAME.search(service.run.argv[0]):
        return None
    program = service.run.argv[0]
    if "/" not in program:
        found = shutil.which(program)
        return Path(found) if found else Path(program)
    cwd = base_dir / service.run.cwd if service.run.cwd else base_dir
    return cwd / program


def sources(inventory: Inventory, base_dir: Path, names: Iterable[str] = ()) -> list[Source]:
    """What to audit of the services `names` (all when empty), in inventory order. A service
    that names no Python environment nor requirement file is audited in the interpreter its
    `run` starts, if that is one; one that names no npm project, in its `run.cwd` if that holds
    a package.json."""
    wanted = list(names)
    unknown = [n for n in wanted if n not in inventory.services]
    if unknown:
        known = ", ".join(inventory.services) or "none"
        raise UsageError(f"no service {', '.join(unknown)}; the services are: {known}")
    found: list[Source] = []
    for name, service in inventory.services.items():
        if wanted and name not in wanted:
            continue
        given = service.dependencies
        if given is not None and given.python:
            found.append(Source(name, "environment", base_dir / given.python))
        elif given is None or not given.requirements:
            interpreter = _interpreter_of_run(service, base_dir)
            if interpreter is not None:
                found.append(Source(name, "environment", interpreter))
        if given is not None:
            found += [Source(name, "requirements", base_dir / r) for r in given.requirements]
        if given is not None and given.npm:
            found.append(Source(name, "npm", base_dir / given.npm))
        elif service.run is not None and service.run.cwd:
            project = base_dir / service.run.cwd
            if (project / "package.json").is_file():
                found.append(Source(name, "npm", project))
    return found


def interpreter(path: Path) -> Path:
    """The interpreter of a virtual environment's directory, or `path` itself."""
    return path / "bin" / "python" if path.is_dir() else path


def site_paths(path: Path, timeout: float) -> list[str]:
    """The directories the environment at `path` installs packages into, asked of its interpreter."""
    python = interpreter(path)
    if not python.exists():
        raise ToolOutputError(f"no Python interpreter at {python}")
    done = subprocess.run([str(python), "-I", "-c", SITE_PATHS], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise ToolOutputError(f"{python} could not say its site-packages: {_last_line(done.stderr)}")
    return [p for p in json.loads(done.stdout) if Path(p).is_dir()]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def pip_audit_argv(source: Source, *, query_url: str, timeout: float, cache_dir: str,
                   paths: list[str]) -> list[str]:
    """pip-audit's arguments for one source: JSON, OSV at `query_url`, the environment's paths
    or the pinned requirement file taken as written."""
    argv = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off",
            "--vulnerability-service", "osv", "--osv-url", query_url, "--timeout", str(max(1, int(timeout))),
            "--cache-dir", cache_dir, "--desc", "on", "--aliases", "on"]
    if source.kind == "requirements":
        return [*argv, "--requirement", str(source.path), "--no-deps", "--disable-pip"]
    for path in paths:
        argv += ["--path", path]
    return argv


def run_pip_audit(source: Source, settings: VulnerabilitySettings,
                  base_url: str) -> tuple[list[Reported], list[str]]:
    paths: list[str] = []
    if source.kind == "environment":
        paths = site_paths(source.path, settings.timeout)
        if not paths:
            raise ToolOutputError(f"{interpreter(source.path)} has no site-packages directory")
    elif not source.path.is_file():
        raise ToolOutputError(f"no requirement file {source.path}")
    with tempfile.TemporaryDirectory(prefix="opsplane-pip-audit-") as cache:
        argv = pip_audit_argv(source, query_url=f"{base_url}/v1/query", timeout=settings.timeout,
                              cache_dir=cache, paths=paths)
        env = {**os.environ, "PIP_NO_INPUT": "1"}
        done = subprocess.run(argv, capture_output=True, text=True, timeout=settings.run_timeout,
                              check=False, env=env)
    if not done.stdout.strip():
        raise ToolOutputError(f"pip-audit failed (exit {done.returncode}): {_last_line(done.stderr)}")
    return tool_output.pip_audit(done.stdout)


def _installed_npm(directory: Path) -> dict[str, str]:
    versions: dict[str, str] = {}
    modules = directory / "node_modules"
    for manifest in list(modules.glob("*/package.json")) + list(modules.glob("@*/*/package.json")):
        try:
            data = json.loads(manifest.read_text())
            versions[str(data["name"])] = str(data["version"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return versions


def run_npm_audit(source: Source, settings: VulnerabilitySettings) -> list[Reported]:
    if not (source.path / "package.json").is_file():
        raise ToolOutputError(f"no package.json in {source.path}")
    npm = shutil.which("npm")
    if npm is None:
        raise ToolOutputError("npm is not installed")
    done = subprocess.run([npm, "audit", "--json"], cwd=source.path, capture_output=True, text=True,
                          timeout=settings.run_timeout, check=False)
    if not done.stdout.strip():
        raise ToolOutputError(f"npm audit failed (exit {done.returncode}): {_last_line(done.stderr)}")
    return tool_output.npm_audit(done.stdout, _installed_npm(source.path))


class Ratings:
    """Each vulnerability's rating from its record at `GET /v1/vulns/{id}`, asked once per run."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=timeout)
        self.known: dict[str, Rating] = {}

    def close(self) -> None:
        self.client.close()

    def record(self, vuln_id: str) -> dict[str, Any] | None:
        try:
            answer = self.client.get(f"/v1/vulns/{vuln_id}")
        except httpx.HTTPError:  # unrated this time; the next audit rates it again
            return None
        if answer.status_code != 200:
            return None
        data = answer.json()
        return data if isinstance(data, dict) else None

    def rate(self, found: Reported) -> Rating:
        if found.rating is not None:
            return found.rating
        if found.vuln_id not in self.known:
            rating = UNRATED
            for vuln_id in (found.vuln_id, *found.aliases):
                record = self.record(vuln_id)
                if record is not None:
                    rating = rate_osv(record)
                    if rating.source != "unrated":
                        break
            self.known[found.vuln_id] = rating
        return self.known[found.vuln_id]


def audit(inventory: Inventory, base_dir: Path, names: Iterable[str] = (), *,
          environ: Mapping[str, str] | None = None, progress: Progress | None = None) -> list[Audited]:
    """Audit the services `names` (all when empty): one `Audited` per service and ecosystem."""
    settings = inventory.vulnerabilities
    base_url = osv_url(settings, os.environ if environ is None else environ)
    groups: dict[tuple[str, str], Audited] = {}
    ratings = Ratings(base_url, settings.timeout)
    try:
        for source in sources(inventory, base_dir, names):
            group = groups.setdefault((source.service, source.ecosystem),
                                      Audited(source.service, source.ecosystem))
            group.sources.append(source.describe())
            if progress is not None:
                progress(f"{source.service}: auditing {source.describe()}")
            try:
                skipped: list[str] = []
                if source.kind == "npm":
                    found = run_npm_audit(source, settings)
                else:
                    found, skipped = run_pip_audit(source, settings, base_url)
            except (ToolOutputError, OSError, subprocess.TimeoutExpired, ValueError) as exc:
                reason = f"{source.describe()}: {exc}"
                group.error = f"{group.error}; {reason}" if group.error else reason
                continue
            group.skipped += skipped
            for item in found:  # an environment and a requirement file may both report one
                if all((had.package, had.vuln_id) != (item.package, item.vuln_id) for had, _ in group.found):
                    group.found.append((item, ratings.rate(item)))
    finally:
        ratings.close()
    return list(groups.values())
