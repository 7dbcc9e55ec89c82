"""The sentences of the scheduled jobs' events: a report kept, with what it found."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opsplane.events.words import text


def _saved(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    job, number = text(d.get("job")) or "?", d.get("report")
    which = f"Report #{number}" if isinstance(number, int) and not isinstance(number, bool) else "A report"
    counts = [f"{d[s]} {s}" for s in ("critical", "warning")
              if isinstance(d.get(s), int) and not isinstance(d.get(s), bool) and d[s]]
    found = f" ({', '.join(counts)})" if counts else ""
    summary = text(d.get("summary"))
    return f"{which} of {job}: {outcome}{found}" + (f": {summary}" if summary else "")


def describers() -> dict[str, Any]:
    """Each report event kind's sentence writer (target, service, outcome, details)."""
    return {"report.saved": _saved}
