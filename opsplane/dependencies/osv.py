"""OSV advisories held locally: loading a directory or an OSV export zip of records, and which
records affect a package version, as the OSV schema defines it (`affected[].versions` and
`affected[].ranges` of type ECOSYSTEM or SEMVER with introduced/fixed/last_affected/limit events).

Versions of PyPI packages are compared with `packaging` (PEP 440); those of other ecosystems
with `packaging` too where they parse, else only by the exact `versions` list. Pure but for `load`.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from opsplane.errors import UsageError

Record = dict[str, Any]


def normalise(ecosystem: str, name: str) -> str:
    """A package name as the ecosystem compares it: PyPI's PEP 503 form, others as written."""
    if ecosystem.lower() == "pypi":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def in_range(version: Version, events: Iterable[Mapping[str, Any]]) -> bool:
    """Whether `version` lies in a range given by its events: affected from an `introduced`
    ("0": from the start) until a `fixed` or `limit` (excluded) or after a `last_affected`."""
    points: list[tuple[Version, int, str]] = []
    for event in events:
        for kind, order in (("introduced", 0), ("fixed", 1), ("last_affected", 1), ("limit", 1)):
            if kind in event:
                raw = str(event[kind])
                at = Version("0") if kind == "introduced" and raw == "0" else _version(raw)
                if at is not None:
                    points.append((at, order, kind))
    affected = False
    for at, _order, kind in sorted(points):
        if kind == "introduced" and version >= at:
            affected = True
        elif kind in ("fixed", "limit") and version >= at:
            affected = False
        elif kind == "last_affected" and version > at:
            affected = False
    return affected


def affects(record: Mapping[str, Any], ecosystem: str, name: str, version: str) -> bool:
    """Whether the OSV `record` affects `name` at `version` in `ecosystem`."""
    wanted = normalise(ecosystem, name)
    parsed = _version(version)
    for affected in record.get("affected") or []:
        package = affected.get("package") or {}
        if str(package.get("ecosystem", "")).lower() != ecosystem.lower():
            continue
        if normalise(ecosystem, str(package.get("name", ""))) != wanted:
            continue
        if version in [str(v) for v in affected.get("versions") or []]:
            return True
        if parsed is None:
            continue
        for ranged in affected.get("ranges") or []:
            if ranged.get("type") in ("ECOSYSTEM", "SEMVER") and in_range(parsed, ranged.get("events") or []):
                return True
    return False


@dataclass
class Advisories:
    """OSV records by id, and by (ecosystem, package) for queries."""

    by_id: dict[str, Record] = field(default_factory=dict)
    by_package: dict[tuple[str, str], list[Record]] = field(default_factory=dict)

    def add(self, record: Record) -> None:
        vuln_id = record.get("id")
        if not isinstance(vuln_id, str) or not vuln_id:
            raise ValueError("an OSV record has an `id`")
        self.by_id[vuln_id] = record
        for affected in record.get("affected") or []:
            package = affected.get("package") or {}
            ecosystem = str(package.get("ecosystem", "")).split(":")[0].lower()
            key = (ecosystem, normalise(ecosystem, str(package.get("name", ""))))
            records = self.by_package.setdefault(key, [])
            if record not in records:
                records.append(record)

    def query(self, ecosystem: str, name: str, version: str) -> list[Record]:
        """The records that affect `name` at `version`, by id."""
        key = (ecosystem.lower(), normalise(ecosystem, name))
        found = [r for r in self.by_package.get(key, []) if affects(r, ecosystem, name, version)]
        return sorted(found, key=lambda r: str(r["id"]))

    def __len__(self) -> int:
        return len(self.by_id)


def _records(source: Path) -> Iterator[tuple[str, bytes]]:
    if source.is_dir():
        for path in sorted(source.rglob("*.json")):
            yield str(path), path.read_bytes()
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for name in sorted(archive.namelist()):
                if name.endswith(".json"):
                    yield f"{source}:{name}", archive.read(name)
    else:
        raise UsageError(f"{source}: not a directory nor a zip of OSV records")


def load(sources: Iterable[Path]) -> Advisories:
    """The OSV records (one JSON object each) in directories (searched through) and zip files,
    such as OSV's per-ecosystem exports (`all.zip`). A file that is no record is a usage error
    naming it."""
    advisories = Advisories()
    for source in sources:
        if not source.exists():
            raise UsageError(f"{source}: no such directory or file")
        for where, raw in _records(source):
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                advisories.add(record)
            except ValueError as exc:
                raise UsageError(f"{where}: not an OSV record: {exc}") from None
    return advisories
