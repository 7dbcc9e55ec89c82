"""A vulnerability's severity and fix time: from the CVSS vector of its OSV record, or the word
the advisory database gives when it has no v3 vector, to the manual's due time. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from opsplane.dependencies.cvss import CvssError, base_score
from opsplane.dependencies.models import FixTimes

Level = Literal["critical", "high", "medium", "low"]
LEVELS: tuple[Level, ...] = ("critical", "high", "medium", "low")
# The words advisory databases use (GitHub's MODERATE, npm's moderate, NVD's NONE)
WORDS: dict[str, Level] = {"critical": "critical", "high": "high", "moderate": "medium", "medium": "medium",
                           "low": "low", "none": "low", "info": "low"}


@dataclass(frozen=True)
class Rating:
    """How bad a vulnerability is: the CVSS v3 base score and vector when one is known, the
    severity, and where the severity came from (cvss, the advisory's word, or unrated)."""

    severity: Level
    score: float | None = None
    vector: str | None = None
    source: str = "cvss"


def level(score: float) -> Level:
    """The manual's severity of a CVSS base score: 9.0 critical, 7.0 high, 4.0 medium, else low."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low"


UNRATED = Rating("medium", source="unrated")


def from_word(word: Any) -> Rating | None:
    """A severity word (CRITICAL, HIGH, MODERATE, LOW) as a rating, or None."""
    found = WORDS.get(str(word).strip().lower()) if word is not None else None
    return Rating(found, source="advisory") if found else None


def from_vector(vector: str) -> Rating | None:
    """A CVSS v3 vector as a rating, or None when it is no valid v3 vector."""
    try:
        score = base_score(vector)
    except CvssError:
        return None
    return Rating(level(score), score=score, vector=vector)


def rate_osv(record: Mapping[str, Any]) -> Rating:
    """An OSV record's rating: its highest CVSS v3 vector (top level or per affected package),
    else `database_specific.severity`, else unrated (medium: no rating is no reason to wait)."""
    entries = list(record.get("severity") or [])
    for affected in record.get("affected") or []:
        if isinstance(affected, Mapping):
            entries += list(affected.get("severity") or [])
    rated = [r for e in entries if isinstance(e, Mapping) and str(e.get("type", "")).startswith("CVSS_V3")
             for r in [from_vector(str(e.get("score", "")))] if r is not None]
    if rated:
        return max(rated, key=lambda r: r.score or 0.0)
    specific = record.get("database_specific")
    word = from_word(specific.get("severity")) if isinstance(specific, Mapping) else None
    return word or UNRATED


def fix_time(severity: Level, times: FixTimes) -> timedelta | None:
    """How long a finding of `severity` may stay open; None for low (the next release)."""
    seconds = {"critical": times.critical, "high": times.high, "medium": times.medium}.get(severity)
    return None if seconds is None else timedelta(seconds=seconds)


def due(first_seen: datetime, severity: Level, times: FixTimes) -> datetime | None:
    """When a finding first seen at `first_seen` must be fixed by; None for low."""
    allowed = fix_time(severity, times)
    return None if allowed is None else first_seen + allowed
