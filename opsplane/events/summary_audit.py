"""The sentences of the event log's own events: a verification, an export, an archive."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsplane.events.words import text


def _count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else text(value) or "?"


def _verified(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    start = f" from the checkpoint after event {text(d['checkpoint'])}" if d.get("checkpoint") else ""
    if outcome == "ok":
        return (f"Event log verified intact: {_count(d.get('checked'))} events{start}, "
                f"head event {text(d.get('head'))}")
    counts = d["counts"] if isinstance(d.get("counts"), Mapping) else {}
    found = ", ".join(f"{text(n)} {wrong}" for wrong, n in sorted(counts.items())) or "problems"
    problems = d["problems"] if isinstance(d.get("problems"), list) else []
    first = f": {text(problems[0])}" if problems else ""
    return f"Event log verification found it broken ({found}){start}{first}"


def _exported(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    return (f"Events {text(d.get('first'))} to {text(d.get('last'))} ({_count(d.get('events'))}) "
            f"exported, signed, to {text(d.get('file'))}")


def _archived(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    return (f"Events {text(d.get('first'))} to {text(d.get('last'))} ({_count(d.get('events'))}) moved "
            f"to the signed archive {text(d.get('archive'))}; the log now starts after event "
            f"{text(d.get('last'))}")


def _archives_deleted(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    names = d["archives"] if isinstance(d.get("archives"), list) else []
    return f"Archives past their keeping time deleted: {', '.join(text(n) for n in names) or 'none'}"


def describers() -> dict[str, Any]:
    """Each event log kind's sentence writer (target, service, outcome, details)."""
    return {"events.verified": _verified, "events.exported": _exported, "events.archived": _archived,
            "events.archives_deleted": _archives_deleted}
