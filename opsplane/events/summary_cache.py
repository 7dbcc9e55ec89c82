"""The sentences of the cache events: a flush with who asked and the keys it dropped, a warm-up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsplane.events.words import text


def _flushed(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    where = f"db {text(d.get('db')) or '0'} of cache {text(d.get('cache'))}"
    why = f" ({text(d.get('reason'))})" if d.get("reason") else ""
    if outcome != "success":
        return f"Flush of {where} failed{why}: {text(d.get('error'))}"
    return f"Flushed {where}: {text(d.get('keys'))} keys deleted{why}"


def _warmed(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    services = text(d.get("services")) or "no service"
    said = f"Cache {text(d.get('cache'))} warmed by {services}: {text(d.get('keys'))} keys loaded"
    problems = text(d.get("problems"))
    return said + (f"; not reached: {problems}" if problems else "")


def describers() -> dict[str, Any]:
    """Each cache event kind's sentence writer (target, service, outcome, details)."""
    return {"cache.flushed": _flushed, "cache.warmed": _warmed}
