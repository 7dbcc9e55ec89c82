"""The event log's hash chain as pure functions: each event's canonical encoding and hash, and
the walk that checks a stretch of events against its start and its head.

An event's hash is SHA-256 over a version line and the canonical JSON of
`[id, ts, kind, actor, target, service, outcome, details, prev_hash]`: `ts` as UTC with
microseconds (`2026-12-06T17:34:13.123456Z`), `details` with sorted keys, no spaces, ASCII
escapes, lists for tuples and integral floats written as integers (PostgreSQL's JSONB keeps
`1e16` as `10000000000000000`, so `1e16` and `10000000000000000` must hash alike). The hash
of the first event's predecessor is GENESIS. The walk reads back what the store holds
(`details` as JSON text, `ts` as the store returns it) and must reach the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Literal

GENESIS = "0" * 64
VERSION = b"opsplane-event-v1\n"
_EXACT = 2 ** 53  # floats below this convert to int exactly
_RECENT = 4096  # hashes of the latest rows kept to tell an insertion from a deletion
LISTED = 100  # problems named one by one; the rest are counted



def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# JSON with sorted keys, no spaces, ASCII escapes, built once (json.dumps builds it every call).
_encoder = c_make_encoder(None, _refuse, encode_basestring_ascii, None, ":", ",", True, False, True) \
    if c_make_encoder is not None else None
_slow = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode


def canonical_json(value: Any) -> str:
    """`value` as canonical JSON: sorted keys, no spaces, ASCII escapes."""
    return "".join(_encoder(value, 0)) if _encoder is not None else _slow(value)


def canonical_ts(ts: datetime) -> str:
    """An aware datetime as the chain writes it: UTC, microseconds, `Z`."""
    if ts.tzinfo is not UTC:
        if ts.tzinfo is None:
            raise ValueError("naive datetime given to the event log; pass an aware UTC datetime")
        ts = ts.astimezone(UTC)
    return ts.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def stored_ts(value: Any) -> str:
    """A `ts` as a store returns it (SQLite's text `YYYY-MM-DD HH:MM:SS.ffffff`, or a
    datetime) in canonical form."""
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " ":
            return f"{value[:10]}T{value[11:]}Z"
        if len(value) == 27 and value[10] == "T" and value[26] == "Z":
            return value
        value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
    return canonical_ts(value)


def json_number(text: str) -> float | int:
    """A JSON float as the chain reads it: integral ones as int (see the module's docstring)."""
    value = float(text)
    if value.is_integer():
        return int(value) if abs(value) < _EXACT else int(Decimal(text))
    return value


def _float(value: float) -> float | int:
    if value.is_integer():
        return int(value) if abs(value) < _EXACT else int(Decimal(repr(value)))
    return value


def _key(key: Any) -> str:
    """A mapping key as `json.dumps` writes it."""
    if isinstance(key, str):
        return str.__str__(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def plain(value: Any) -> Any:
    """`value` as it reads back from the store's JSON, integral floats as int: what is hashed."""
    if isinstance(value, str):
        return str.__str__(value)
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dict):
        return {_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_decode = json.JSONDecoder(parse_float=json_number).decode


def details_from_text(text: str) -> Any:
    """Stored `details` JSON text as it is hashed."""
    return _decode(text)


def event_hash(event_id: int, ts: str, kind: str, actor: str, target: str, service: str | None,
               outcome: str, details: Any, prev_hash: str) -> str:
    """The hash of one event; `ts` canonical, `details` already `plain`. The bytes are the
    canonical JSON of the list of fields (written out here field by field, which is faster)."""
    esc = encode_basestring_ascii
    body = (f"[{int(event_id)},{esc(ts)},{esc(kind)},{esc(actor)},{esc(target)},"
            f"{'null' if service is None else esc(service)},{esc(outcome)},{canonical_json(details)},"
            f"{esc(prev_hash)}]")
    return hashlib.sha256(VERSION + body.encode()).hexdigest()


@dataclass(slots=True)
class Row:
    """One event as the walk sees it: `ts` canonical, `details` as hashed. (Not frozen: a
    frozen dataclass is slower to make, and a walk makes a million.)"""

    id: int
    ts: str
    kind: str
    actor: str
    target: str
    service: str | None
    outcome: str
    details: Any
    prev_hash: str | None
    hash: str | None

    def computed(self) -> str:
        return event_hash(self.id, self.ts, self.kind, self.actor, self.target, self.service,
                          self.outcome, self.details, self.prev_hash or "")

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "kind": self.kind, "actor": self.actor, "target": self.target,
                "service": self.service, "outcome": self.outcome, "details": self.details,
                "prev_hash": self.prev_hash, "hash": self.hash}


Wrong = Literal["changed", "missing", "inserted", "head"]


@dataclass(frozen=True)
class Problem:
    """What is wrong at one event: `changed` (its content no longer matches its hash),
    `missing` (events before it are gone), `inserted` (it is not part of the chain), `head`
    (the chain's end is not where the store's head says)."""

    event_id: int
    wrong: Wrong
    what: str

    def as_dict(self) -> dict[str, Any]:
        return {"event_id": self.event_id, "wrong": self.wrong, "what": self.what}


@dataclass(frozen=True)
class Anchor:
    """A point of the chain: an event id and its hash (id 0 and GENESIS: before the first)."""

    id: int = 0
    hash: str = GENESIS


@dataclass
class Walk:
    """The outcome of a walk: how many events were checked, the first and last of them, the
    problems (the first LISTED named, all counted by kind)."""

    start: Anchor
    checked: int = 0
    first: Anchor | None = None
    last: Anchor | None = None
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.counts

    def add(self, problem: Problem) -> None:
        self.counts[problem.wrong] = self.counts.get(problem.wrong, 0) + 1
        if len(self.problems) < LISTED:
            self.problems.append(problem)


def walk(rows: Iterable[Row], *, start: Anchor = Anchor(), head: Anchor | None = None) -> Walk:
    """Check `rows` (in id order) as the chain that continues from `start`, ending at `head`
    when given. Every row's hash must match its content and link to the row before it."""
    found = Walk(start)
    expected = start.hash
    last_id = start.id
    recent: deque[str] = deque(maxlen=_RECENT)
    by_hash: dict[str, int] = {}
    for row in rows:
        found.checked += 1
        if row.id <= start.id:
            found.add(Problem(row.id, "inserted", f"event {row.id} is at or before the checkpoint "
                              f"(event {start.id}) the chain starts from, so it is not part of the chain"))
            continue
        if row.hash is None or row.prev_hash is None:
            found.add(Problem(row.id, "inserted", f"event {row.id} has no hash: it was written outside "
                              "the chain, not by opsplane's event log"))
            continue
        if row.computed() != row.hash:
            found.add(Problem(row.id, "changed", f"event {row.id} was changed: its content does not match "
                              "its hash"))
        if row.prev_hash != expected:
            _unlinked(found, row, last_id, by_hash)
        if found.first is None:
            found.first = Anchor(row.id, row.hash)
        expected, last_id = row.hash, row.id
        if len(recent) == _RECENT:
            by_hash.pop(recent[0], None)
        recent.append(row.hash)
        by_hash[row.hash] = row.id
    found.last = Anchor(last_id, expected) if found.first is not None else None
    if head is not None:
        _check_head(found, head, Anchor(last_id, expected))
    return found


def _unlinked(found: Walk, row: Row, last_id: int, by_hash: dict[str, int]) -> None:
    """`row` does not link to the row before it: say what most likely happened."""
    earlier = by_hash.get(row.prev_hash or "")
    if earlier is not None and earlier < last_id:
        found.add(Problem(last_id, "inserted", f"event {row.id} links to event {earlier}, so the events "
                          f"after {earlier} up to {last_id} were inserted into the chain"))
    elif row.id > last_id + 1:
        gone = (f"event {last_id + 1} is" if row.id == last_id + 2
                else f"events {last_id + 1} to {row.id - 1} are")
        found.add(Problem(row.id, "missing", f"{gone} missing before event {row.id}: it links to a "
                          f"predecessor that is not in the store (deleted), not to event {last_id}"))
    else:
        found.add(Problem(row.id, "missing", f"event {row.id} does not link to event {last_id}: its "
                          f"predecessor was deleted and replaced, or event {last_id} was rewritten with a "
                          "new hash"))


def _check_head(found: Walk, head: Anchor, reached: Anchor) -> None:
    if head.id == reached.id and head.hash == reached.hash:
        return
    if head.id > reached.id:
        gone = (f"event {head.id} is" if head.id == reached.id + 1
                else f"events {reached.id + 1} to {head.id} are")
        found.add(Problem(head.id, "missing", f"{gone} missing at the end of the log: the chain's "
                          f"head is event {head.id} but the last event in the store is {reached.id}"))
    elif head.id < reached.id:
        found.add(Problem(reached.id, "inserted", f"events after {head.id} are not part of the chain: the "
                          f"chain's head is event {head.id} but the store has up to {reached.id}"))
    else:
        found.add(Problem(head.id, "head", f"event {head.id} is the chain's head, but its hash is not the "
                          "one the head records: it was replaced"))


def rows_from(items: Iterable[tuple[Any, ...]]) -> Iterator[Row]:
    """Rows from store tuples (id, ts, kind, actor, target, service, outcome, details JSON
    text, prev_hash, hash)."""
    for event_id, ts, kind, actor, target, service, outcome, details, prev_hash, digest in items:
        yield Row(int(event_id), stored_ts(ts), kind, actor, target, service, outcome,
                  details_from_text(details) if isinstance(details, str) else plain(details),
                  prev_hash, digest)
