"""What the audit tools say, read into one shape: pip-audit's JSON (`--format json`) and
`npm audit --json` (npm 7 and later). Pure: text in, values out."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsplane.dependencies.severity import Rating, from_vector, from_word


class ToolOutputError(ValueError):
    """The tool's output is not the JSON it writes."""


@dataclass(frozen=True)
class Reported:
    """One vulnerability of one package as a tool reported it. `rating` is set when the tool
    itself rates it (npm); pip-audit's are rated from the OSV record."""

    ecosystem: str  # PyPI | npm
    package: str
    version: str
    vuln_id: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    fix_versions: tuple[str, ...] = ()
    rating: Rating | None = field(default=None, compare=False)


def _json(text: str, tool: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ToolOutputError(f"{tool} did not write JSON: {text.strip()[:200]!r}") from None


def pip_audit(text: str) -> tuple[list[Reported], list[str]]:
    """The vulnerabilities in pip-audit's JSON, and the packages it skipped (with why)."""
    data = _json(text, "pip-audit")
    if not isinstance(data, Mapping) or not isinstance(data.get("dependencies"), list):
        raise ToolOutputError("pip-audit's JSON has no `dependencies` list")
    found: list[Reported] = []
    skipped: list[str] = []
    for dep in data["dependencies"]:
        if "skip_reason" in dep:
            skipped.append(f"{dep.get('name')}: {dep['skip_reason']}")
            continue
        for vuln in dep.get("vulns") or []:
            found.append(Reported(
                ecosystem="PyPI", package=str(dep["name"]), version=str(dep["version"]),
                vuln_id=str(vuln["id"]), aliases=tuple(str(a) for a in vuln.get("aliases") or []),
                summary=str(vuln.get("description") or "")[:500],
                fix_versions=tuple(str(v) for v in vuln.get("fix_versions") or [])))
    return found, skipped


GHSA = re.compile(r"GHSA(-[23456789cfghjmpqrvwx]{4}){3}")


def _npm_rating(via: Mapping[str, Any]) -> Rating | None:
    cvss = via.get("cvss")
    if isinstance(cvss, Mapping) and cvss.get("vectorString"):
        rated = from_vector(str(cvss["vectorString"]))
        if rated is not None:
            return rated
    return from_word(via.get("severity"))


def npm_audit(text: str, installed: Mapping[str, str] | None = None) -> list[Reported]:
    """The advisories in `npm audit --json`: one per package and advisory (an entry whose `via`
    names only other packages is a dependency of a vulnerable one, not an advisory of its own).
    `installed` gives the versions found in node_modules; else the vulnerable range is kept."""
    data = _json(text, "npm audit")
    if isinstance(data, Mapping) and "error" in data and "vulnerabilities" not in data:
        error = data["error"]
        said = data.get("message") or (error.get("summary") if isinstance(error, Mapping) else error)
        raise ToolOutputError(f"npm audit failed: {said or 'no reason given'}")
    vulnerabilities = data.get("vulnerabilities") if isinstance(data, Mapping) else None
    if not isinstance(vulnerabilities, Mapping):
        raise ToolOutputError("npm audit's JSON has no `vulnerabilities` (npm 7 or later writes it)")
    found: list[Reported] = []
    for name, entry in sorted(vulnerabilities.items()):
        fix = entry.get("fixAvailable")
        fixes = (str(fix["version"]),) if isinstance(fix, Mapping) and fix.get("name") == name else ()
        for via in entry.get("via") or []:
            if not isinstance(via, Mapping):
                continue
            url = str(via.get("url") or "")
            ghsa = GHSA.search(url)
            vuln_id = ghsa.group(0) if ghsa else f"npm-{via.get('source')}"
            version = (installed or {}).get(name) or str(entry.get("range") or via.get("range") or "?")
            found.append(Reported(ecosystem="npm", package=name, version=version, vuln_id=vuln_id,
                                  summary=str(via.get("title") or "")[:500], fix_versions=fixes,
                                  rating=_npm_rating(via)))
    return found
