"""What opsplane reads from one Redis server, as plain values the analysis judges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KeyspaceDb:
    """One database of INFO's keyspace section: its keys, those with an expiry, mean TTL (ms)."""

    db: int
    keys: int
    expires: int
    avg_ttl_ms: int

    def as_dict(self) -> dict[str, Any]:
        return {"db": self.db, "keys": self.keys, "expires": self.expires, "avg_ttl_ms": self.avg_ttl_ms}


@dataclass(frozen=True)
class BigKey:
    """A key found by sampling, with its type and what MEMORY USAGE says it takes."""

    db: int
    key: str
    type: str
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"db": self.db, "key": self.key, "type": self.type, "bytes": self.bytes}


@dataclass(frozen=True)
class Sample:
    """The big-key sample: how many keys SCAN visited per database (at most the sample size
    each) and the biggest of them. A sample, not a census: a big key not visited is not seen."""

    size: int
    looked_at: dict[int, int] = field(default_factory=dict)
    biggest: tuple[BigKey, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"sample_size": self.size, "looked_at": {str(db): n for db, n in self.looked_at.items()},
                "biggest": [key.as_dict() for key in self.biggest]}


@dataclass(frozen=True)
class CacheFacts:
    """One cache as read: INFO's fields, its databases and the big-key sample."""

    name: str
    address: str
    info: dict[str, str]
    keyspace: tuple[KeyspaceDb, ...] = ()
    sample: Sample | None = None
