"""Signed exports of the event log for auditors, and the archives retention writes (the same
format): checking one needs only the file and the public key.

A file is JSON lines: one line per event in id order (every column, `ts` canonical, `details`
as hashed, `prev_hash`, `hash`), then one last line `{"manifest": {...}, "signature": "..."}`.
The manifest names the stretch of the chain inside (the event before it, the first and the
last event with their hashes, the count), the chain's head and checkpoint when it was written,
whether the stretch was intact, and the SHA-256 of every event line; the signature is
Ed25519 over the manifest's canonical JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, func, select, text

from opsplane.errors import UsageError
from opsplane.events.chain import Anchor, Row, Walk, canonical_ts, json_number, walk
from opsplane.events.keys import fingerprint, signed_by
from opsplane.events.tables import Event
from opsplane.events.verify import chain_state, select_rows, snapshot
from opsplane.store import Store

FORMAT = "opsplane-events-export"
VERSION = 1
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode


class BadExport(UsageError):
    """The file is not an export opsplane can read at all."""


def stretch(connection: Connection, *, since: datetime | None, until: datetime | None,
            after: int | None = None, upto: int | None = None) -> tuple[int, int] | None:
    """The first and last event ids of the contiguous stretch from the first event at or after
    `since` to the last one before `until` (ids after `after`, up to `upto`); None when it is
    empty. Event times follow ids closely but not strictly (a time may be given), so an event
    just outside the times can be inside the stretch: the chain has no holes."""
    first_q, last_q = select(func.min(Event.id)), select(func.max(Event.id))
    if since is not None:
        first_q = first_q.where(Event.ts >= since)  # the column's type writes the time as stored
    if after is not None:
        first_q = first_q.where(Event.id > after)
    if until is not None:
        last_q = last_q.where(Event.ts < until)
    if upto is not None:
        last_q = last_q.where(Event.id <= upto)
    first, last = connection.execute(first_q).scalar(), connection.execute(last_q).scalar()
    if first is None or last is None or first > last:
        return None
    return int(first), int(last)


def _before(connection: Connection, first: int) -> Anchor:
    """The anchor a stretch starting at `first` links to: the event before it, or the checkpoint."""
    found = connection.execute(text("SELECT id, hash FROM events WHERE id < :first ORDER BY id DESC LIMIT 1"),
                               {"first": first}).first()
    if found is not None and found[1] is not None:
        return Anchor(int(found[0]), found[1])
    return chain_state(connection).checkpoint


@dataclass
class Written:
    path: Path
    manifest: dict[str, Any]
    result: Walk

    @property
    def intact(self) -> bool:
        return self.result.intact


def write(store: Store, path: Path, key: Ed25519PrivateKey, *, now: datetime, since: datetime | None = None,
          until: datetime | None = None, after: int | None = None, upto: int | None = None,
          kind: str = "export") -> Written | None:
    """Write the stretch of events between `since` and `until` (ids after `after`, up to
    `upto`) to `path`, signed; None (nothing written) when there are no events in it."""
    with snapshot(store) as connection:
        state = chain_state(connection)
        found = stretch(connection, since=since, until=until, after=after, upto=upto)
        if found is None:
            return None
        first, last = found
        start = _before(connection, first)
        digest = hashlib.sha256()
        partial = path.with_name(path.name + ".partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        times: list[str] = []
        with open(partial, "wb") as handle:
            def lines() -> Iterator[Row]:
                for row in select_rows(connection, after=first - 1, upto=last):
                    line = _encode(row.as_dict()).encode() + b"\n"
                    digest.update(line)
                    handle.write(line)
                    if not times:
                        times.append(row.ts)
                    yield row
                    last_ts = row.ts
                times.append(last_ts)

            result = walk(lines(), start=start)
            manifest = {
                "format": FORMAT, "version": VERSION, "kind": kind, "created_at": canonical_ts(now),
                "since": canonical_ts(since) if since else None,
                "until": canonical_ts(until) if until else None,
                "events": result.checked, "start": start.__dict__,
                "first": result.first.__dict__ if result.first else None,
                "last": result.last.__dict__ if result.last else None,
                "first_ts": times[0] if times else None, "last_ts": times[-1] if times else None,
                "intact": result.intact, "problems": dict(result.counts),
                "head": state.head.__dict__, "checkpoint": state.checkpoint.__dict__,
                "lines_sha256": digest.hexdigest(), "key": fingerprint(key.public_key())}
            signature = base64.b64encode(key.sign(_encode(manifest).encode())).decode()
            handle.write(_encode({"manifest": manifest, "signature": signature}).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    return Written(path, manifest, result)


@dataclass
class ExportCheck:
    """What checking an export found: `problems` empty when the signature, the lines and the
    chain inside all hold."""

    path: Path
    manifest: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    result: Walk | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "ok": self.ok, "problems": self.problems, "manifest": self.manifest,
                "chain": None if self.result is None else {
                    "checked": self.result.checked, "counts": dict(self.result.counts),
                    "problems": [p.as_dict() for p in self.result.problems]}}


def _signed(path: Path) -> tuple[dict[str, Any], bytes]:
    """The manifest and the signature on the last line of `path`."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 65536))
            tail = handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    except OSError as exc:
        raise BadExport(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        last = json.loads(tail)
        manifest, signature = dict(last["manifest"]), base64.b64decode(last["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadExport(f"{path}: its last line is not a signed manifest ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise BadExport(f"{path}: format {manifest.get('format')!r}, not an opsplane events export")
    return manifest, signature


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of an export (its last line), unchecked."""
    return _signed(path)[0]


def check(path: Path, key: Ed25519PublicKey) -> ExportCheck:
    """Check `path` against `key`: the manifest's signature, the lines' digest and count, and
    the chain inside from the manifest's start to its last event."""
    manifest, signature = _signed(path)
    found = ExportCheck(path, manifest)
    if not signed_by(key, signature, _encode(manifest).encode()):
        found.problems.append("the signature does not match the manifest with this public key: the manifest "
                              "was changed, or another key signed it")
    digest = hashlib.sha256()
    unreadable: list[int] = []

    def events() -> Iterator[Row]:
        with open(path, "rb") as handle:
            held: bytes | None = None
            for number, line in enumerate(handle, 1):
                if held is not None:
                    digest.update(held)
                    try:
                        yield _row(held)
                    except (ValueError, KeyError, TypeError):
                        unreadable.append(number - 1)
                held = line

    start, last = manifest.get("start") or {}, manifest.get("last")
    found.result = walk(events(), start=Anchor(int(start.get("id", 0)), str(start.get("hash", ""))),
                        head=Anchor(int(last["id"]), str(last["hash"])) if last else None)
    if digest.hexdigest() != manifest.get("lines_sha256"):
        found.problems.append("the event lines are not the ones the manifest was signed over "
                              "(lines changed, added or removed)")
    if unreadable:
        found.problems.append(f"line {unreadable[0]} is not an event")
    if found.result.checked != manifest.get("events"):
        found.problems.append(f"{found.result.checked:,} events in the file, the manifest says "
                              f"{manifest.get('events')}")
    found.problems.extend(p.what for p in found.result.problems)
    if not manifest.get("intact", False):
        found.problems.append(f"the manifest itself says the stretch was not intact when it was written: "
                              f"{manifest.get('problems')}")
    return found


def _row(line: bytes) -> Row:
    item = json.loads(line, parse_float=json_number)
    return Row(int(item["id"]), str(item["ts"]), str(item["kind"]), str(item["actor"]), str(item["target"]),
               item["service"], str(item["outcome"]), item["details"], item["prev_hash"], item["hash"])
