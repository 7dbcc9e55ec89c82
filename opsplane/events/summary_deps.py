"""The sentences of the dependency audit's events: a vulnerability found in a service's package,
and one fixed (no longer reported), with whether the fix came in time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsplane.events.words import text
from opsplane.timefmt import span_words


def _said(d: Mapping[str, Any], key: str) -> str:
    return text(d.get(key)) or "?"


def _score(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return f", CVSS {value:.1f}"


def _found(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    due_at = d.get("due_at")
    due = f"; fix by {due_at[:16].replace('T', ' ')} UTC" if isinstance(due_at, str) and due_at else \
        "; fix with the next release"
    fixes = d.get("fix_versions")
    named = [text(v) for v in fixes if text(v)] if isinstance(fixes, list) else []
    fixed_in = f" (fixed in {', '.join(named)})" if named else ""
    score = _score(d.get("cvss"))
    return (f"{service or _said(d, 'service')}: {_said(d, 'package')} {_said(d, 'version')} has "
            f"{_said(d, 'vuln')}{fixed_in}, {_said(d, 'severity')}{score}{due}")


def _fixed(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    took = d.get("open_for")
    after = f" after {span_words(float(took))}" if isinstance(took, int | float) else ""
    late = ", later than its due time" if d.get("late") else ""
    return (f"{service or _said(d, 'service')}: {_said(d, 'vuln')} in {_said(d, 'package')} fixed"
            f"{after}{late}")


def describers() -> dict[str, Any]:
    """Each dependency audit event kind's sentence writer (target, service, outcome, details)."""
    return {"deps.found": _found, "deps.fixed": _fixed}
