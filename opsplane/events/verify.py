"""Checking the event log in the store: its events read back in id order, in one snapshot with
the chain's head and checkpoint, walked by `chain.walk`, and the outcome recorded.

`opsplane events verify`, `GET /api/v1/events/verify` and the `audit-verify` job all come here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from opsplane.events.chain import Anchor, Row, Walk, rows_from, walk
from opsplane.store import Store

COLUMNS = "id, ts, kind, actor, target, service, outcome, {details}, prev_hash, hash"
_BATCH = 10_000


@dataclass(frozen=True)
class ChainState:
    """The chain's head (last event) and checkpoint (last archived event, id 0 when none)."""

    head: Anchor
    checkpoint: Anchor
    checkpoint_at: datetime | None


@dataclass
class Verification:
    state: ChainState
    result: Walk

    @property
    def intact(self) -> bool:
        return self.result.intact

    def summary(self) -> str:
        start = (f"from the checkpoint after archived event {self.state.checkpoint.id}"
                 if self.state.checkpoint.id else "from the first event")
        if self.intact:
            return (f"the event log is intact: {self.result.checked:,} events checked {start}, "
                    f"head event {self.state.head.id}")
        counts = ", ".join(f"{n:,} {wrong}" for wrong, n in sorted(self.result.counts.items()))
        first = self.result.problems[0].what
        return f"the event log is broken ({counts}), checked {start}: {first}"

    def as_dict(self) -> dict[str, Any]:
        result = self.result
        return {
            "intact": self.intact, "checked": result.checked,
            "starts_from": {"event_id": self.state.checkpoint.id, "hash": self.state.checkpoint.hash,
                            "checkpoint": self.state.checkpoint.id > 0,
                            "at": self.state.checkpoint_at.isoformat() if self.state.checkpoint_at else None},
            "head": {"event_id": self.state.head.id, "hash": self.state.head.hash},
            "first": result.first.__dict__ if result.first else None,
            "last": result.last.__dict__ if result.last else None,
            "counts": dict(result.counts), "problems": [p.as_dict() for p in result.problems],
            "summary": self.summary()}


def chain_state(connection: Connection) -> ChainState:
    from opsplane.events.tables import EventChain

    found = connection.execute(select(EventChain.last_id, EventChain.last_hash, EventChain.base_id,
                                      EventChain.base_hash, EventChain.base_at)
                               .where(EventChain.id == 1)).first()
    if found is None:
        from opsplane.errors import StoreError

        raise StoreError("the event log's chain head (table event_chain) is missing; "
                         "run `opsplane db upgrade`")
    return ChainState(Anchor(int(found[0]), found[1]), Anchor(int(found[2]), found[3]), found[4])


def select_rows(connection: Connection, *, after: int, upto: int | None = None) -> Iterator[Row]:
    """Events with `after` < id (<= `upto`) in id order, as the chain reads them, streamed."""
    postgres = connection.dialect.name == "postgresql"
    sql = (f"SELECT {COLUMNS.format(details='details::text' if postgres else 'details')} FROM events "
           f"WHERE id > :after{' AND id <= :upto' if upto is not None else ''} ORDER BY id")
    params = {"after": after, "upto": upto}
    if postgres:
        streamed = connection.execution_options(stream_results=True, yield_per=_BATCH)
        result = streamed.execute(text(sql), params)
        yield from rows_from(tuple(r) for r in result)
        return
    raw = connection.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor()
    cursor.arraysize = _BATCH
    cursor.execute(sql.replace(":after", "?").replace(":upto", "?"),
                   (after,) if upto is None else (after, upto))
    try:
        while batch := cursor.fetchmany():
            yield from rows_from(batch)
    finally:
        cursor.close()


@contextmanager
def snapshot(store: Store) -> Iterator[Connection]:
    """A connection whose reads all see one moment of the store."""
    with store.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection
            return
        raw = connection.connection.driver_connection
        assert raw is not None
        raw.execute("BEGIN")  # a read transaction: WAL keeps its snapshot until it ends
        try:
            yield connection
        finally:
            raw.rollback()


def verify_store(store: Store, *, progress: Callable[[int], None] | None = None) -> Verification:
    """Walk the whole chain in the store, from its checkpoint to its head."""
    with snapshot(store) as connection:
        state = chain_state(connection)
        rows: Iterator[Row] = select_rows(connection, after=0)
        if progress is not None:
            rows = _counted(rows, progress)
        result = walk(rows, start=state.checkpoint, head=state.head)
    return Verification(state, result)


def _counted(rows: Iterator[Row], progress: Callable[[int], None]) -> Iterator[Row]:
    for n, row in enumerate(rows, 1):
        if n % 50_000 == 0:
            progress(n)
        yield row


def record_verified(session: Session, verification: Verification, *, actor: str, now: datetime) -> None:
    """The `events.verified` event: the outcome, what was checked, the first problems."""
    from opsplane.events import service

    result = verification.result
    service.record(session, kind="events.verified", actor=actor, target="events",
                   outcome="ok" if verification.intact else "broken", ts=now, details={
                       "checked": result.checked, "head": verification.state.head.id,
                       "head_hash": verification.state.head.hash,
                       "checkpoint": verification.state.checkpoint.id, "counts": dict(result.counts),
                       "problems": [p.what for p in result.problems[:5]]})
