"""The sentences of database care's events: VACUUM and ANALYZE run, idle sessions ended."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsplane.events.words import text


def _database(target: str) -> str:
    return target.removeprefix("database:") or "?"


def _maintained(command: str) -> Any:
    def sentence(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
        what = text(d.get("statement")) or f"{command}{' (ANALYZE)' if d.get('analyze') else ''} " \
            f"{text(d.get('table')) or 'every table'}"
        if outcome == "failed":
            return f"{what} on {_database(target)} failed: {text(d.get('error'))}"
        seconds = d.get("seconds")
        took = f" in {seconds:g} s" if isinstance(seconds, int | float) else ""
        return f"{what} on {_database(target)} done{took}"
    return sentence


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _terminated(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    ended = _list(d.get("terminated"))
    listed = _list(d.get("sessions"))
    older = d.get("older_than_s")
    over = f" over {older:g} s" if isinstance(older, int | float) else ""
    pids = ", ".join(text(p) for p in ended) or "none"
    return (f"Ended {len(ended)} of {len(listed)} sessions idle in a transaction{over} on "
            f"{_database(target)} (pids {pids})")


def describers() -> dict[str, Any]:
    """Each database care event kind's sentence writer (target, service, outcome, details)."""
    return {"db.vacuum": _maintained("VACUUM"), "db.analyze": _maintained("ANALYZE"),
            "db.sessions_terminated": _terminated}
