"""The sentences of the game day domain's events: a fault injected, undone, the verdict, a
refusal, a game day cut off."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from opsplane.events.words import text
from opsplane.timefmt import span


def _said(d: Mapping[str, Any], key: str, default: str = "?") -> str:
    return text(d.get(key)) or default


def _measures(d: Mapping[str, Any]) -> str:
    found = d.get("measures")
    if not isinstance(found, Mapping):
        return ""
    parts = []
    for name, m in found.items():
        if isinstance(m, Mapping) and m.get("seconds") is not None:
            parts.append(f"{name} {span(float(m['seconds']))} ({m.get('verdict')})")
        elif isinstance(m, Mapping) and m.get("verdict") == "fail":
            parts.append(f"{name} never (fail)")
    return "; ".join(parts)


def _gameday(kind: str, target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    day = f"Game day {_said(d, 'gameday')} ({_said(d, 'scenario')})"
    if kind == "gameday.requested":
        return f"{day} requested"
    if kind == "gameday.injected":
        limit = d.get("max_duration")
        most = f" for at most {span(float(limit))}" if isinstance(limit, int | float) else ""
        return f"{day}: fault {_said(d, 'kind')} injected on {service or '?'}{most}"
    if kind == "gameday.ended":
        return f"{day}: fault undone: {_said(d, 'undone')}" if outcome == "ok" else \
            f"{day}: the fault could not be undone: {_said(d, 'undone')}"
    if kind == "gameday.finished":
        measures = _measures(d)
        return f"{day} {_said(d, 'verdict')}" + (f": {measures}" if measures else "")
    if kind == "gameday.failed":
        return f"{day} failed: {_said(d, 'error')}"
    if kind == "gameday.interrupted":
        return f"{day} was cut off: {_said(d, 'undone')}"
    if kind == "gameday.refused":
        return f"Game day {_said(d, 'scenario')} refused: {_said(d, 'reason')}"
    return f"{kind} {target}: {outcome}"


GAMEDAY_KINDS = ("gameday.requested", "gameday.injected", "gameday.ended", "gameday.finished",
                 "gameday.failed", "gameday.interrupted", "gameday.refused")


def describers() -> dict[str, Any]:
    """Each game day event kind's sentence writer (target, service, outcome, details)."""
    return {kind: functools.partial(_gameday, kind) for kind in GAMEDAY_KINDS}
