"""The inventory's words for the dependency audit: where each service's packages are
(`services.NAME.dependencies`) and which OSV-compatible API rates them (`vulnerabilities:`)."""

from __future__ import annotations

from pydantic import Field

from opsplane.config.types import Duration, Strict

PUBLIC_OSV = "https://api.osv.dev"
OSV_URL_ENV = "OPSPLANE_OSV_URL"


class DependencySources(Strict):
    """Where one service's third-party packages are, for `opsplane audit deps`."""

    python: str | None = Field(
        None, description="The service's Python environment: a virtual environment's directory or its "
        "interpreter, relative to the inventory's directory. Unset, with no `requirements` either: the "
        "interpreter `run.argv` starts, when it names one (python, python3, .venv/bin/python, ...).")
    requirements: list[str] = Field(
        default_factory=list, description="Requirement files audited as they are written, every package "
        "pinned with `==` (a lock file), instead of an installed environment.")
    npm: str | None = Field(
        None, description="A directory with package.json and package-lock.json, audited with `npm audit`. "
        "Unset: `run.cwd`, when it holds a package.json.")


class FixTimes(Strict):
    """How long a vulnerability of each severity may stay open; low ones wait for the next release."""

    critical: Duration = Field(4 * 3600.0, description="CVSS 9.0 and above.")
    high: Duration = Field(24 * 3600.0, description="CVSS 7.0 to 8.9.")
    medium: Duration = Field(7 * 24 * 3600.0, description="CVSS 4.0 to 6.9, and a vulnerability no "
                             "advisory rates.")


class VulnerabilitySettings(Strict):
    """The inventory's `vulnerabilities:` section."""

    osv_url: str = Field(
        PUBLIC_OSV, description="Base address of the OSV-compatible API vulnerabilities are looked up in "
        "(`/v1/query`, `/v1/vulns/{id}`); a closed network points it at its mirror, such as "
        f"`opsplane audit osv-serve`. The environment variable {OSV_URL_ENV} overrides it.")
    timeout: Duration = Field(60.0, description="Longest wait for one request to the OSV API.")
    run_timeout: Duration = Field(600.0, description="Longest run of one pip-audit or npm audit.")
    fix_times: FixTimes = Field(default_factory=FixTimes, description="The manual's fix times by severity.")
