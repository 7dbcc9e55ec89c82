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

COLUMNS = "id, {ts}, kind, actor, target, service, outcome, {details}, prev_hash, hash"
# PostgreSQL writes the time in the chain's own form and the details as text, which is faster
# than making datetimes and Python objects of them only to write them out again.
_PG_TS = "to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
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
    raw = connection.connection.driver_connection
    assert raw is not None
    return _rows(raw, connection.dialect.name == "postgresql", after=after, upto=upto)


def _rows(raw: Any, postgres: bool, *, after: int, upto: int | None) -> Iterator[Row]:
    """The same from a DBAPI connection (sqlite3 or psycopg) inside its read transaction."""
    columns = COLUMNS.format(ts=_PG_TS, details="details::text") if postgres \
        else COLUMNS.format(ts="ts", details="details")
    mark = "%s" if postgres else "?"
    sql = (f"SELECT {columns} FROM events WHERE id > {mark}"
           f"{f' AND id <= {mark}' if upto is not None else ''} ORDER BY id")
    # PostgreSQL: a server-side cursor, so a million rows are never all in memory at once.
    cursor = raw.cursor(name="opsplane_events_walk") if postgres else raw.cursor()
    cursor.arraysize = _BATCH
    cursor.execute(sql, (after,) if upto is None else (after, upto))
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


def verify_store(store: Store, *, progress: Callable[[int], None] | None = None,
                 processes: int = 1) -> Verification:
    """Walk the whole chain in the store, from its checkpoint to its head. With `processes`
    above 1 (a command, never `serve`: it starts processes) a large log is cut into that many
    stretches by id, each walked by a process of its own from the stored hash before it, which
    is exactly what one walk would compare it with."""
    with snapshot(store) as connection:
        state = chain_state(connection)
        parts = _stretches(connection, state, processes) if processes > 1 else []
        if len(parts) > 1:
            result = _walk_in_parts(store, connection, state, parts)
        else:
            rows: Iterator[Row] = select_rows(connection, after=0)
            if progress is not None:
                rows = _counted(rows, progress)
            result = walk(rows, start=state.checkpoint, head=state.head)
    if len(parts) > 1 and store.engine.dialect.name == "sqlite":
        with snapshot(store) as connection:  # each process read its own snapshot: retention between?
            if chain_state(connection).checkpoint != state.checkpoint:
                return verify_store(store, progress=progress)
    return Verification(state, result)


PARALLEL_FROM = 200_000  # fewer events are walked in one process: starting others costs more


def _stretches(connection: Connection, state: ChainState, processes: int) -> list[tuple[int, int | None]]:
    """(after, upto) id bounds of up to `processes` stretches of the log; one when it is small."""
    low, high = connection.execute(text("SELECT min(id), max(id) FROM events")).one()
    if low is None or high - low < PARALLEL_FROM:
        return []
    size = (high - low + 1) // processes + 1
    bounds = [low - 1 + size * k for k in range(processes)]
    return [(after, upto) for after, upto in zip(bounds, [*bounds[1:], None], strict=True)]


def _anchor_before(connection: Connection, state: ChainState, after: int) -> Anchor:
    """What one walk would expect the event after `after` to link to: the stored hash of the
    last chained event at or before it after the checkpoint, else the checkpoint."""
    found = connection.execute(text(
        "SELECT id, hash FROM events WHERE id <= :after AND id > :base AND hash IS NOT NULL "
        "AND prev_hash IS NOT NULL ORDER BY id DESC LIMIT 1"),
        {"after": after, "base": state.checkpoint.id}).first()
    return Anchor(int(found[0]), found[1]) if found is not None else state.checkpoint


def _walk_in_parts(store: Store, connection: Connection, state: ChainState,
                   parts: list[tuple[int, int | None]]) -> Walk:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from opsplane.store.db import sqlite_file

    postgres = connection.dialect.name == "postgresql"
    if postgres:
        shared = str(connection.execute(text("SELECT pg_export_snapshot()")).scalar())
        target = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    else:
        shared, target = "", str(sqlite_file(store.url))
    starts = [state.checkpoint] + [_anchor_before(connection, state, after) for after, _ in parts[1:]]
    raw = connection.connection.driver_connection
    with ProcessPoolExecutor(len(parts) - 1, mp_context=get_context("spawn")) as pool:
        others = [pool.submit(_walk_part, postgres, target, shared, after, upto, start,
                              state.head if upto is None else None)
                  for (after, upto), start in zip(parts[1:], starts[1:], strict=True)]
        first = walk(_rows(raw, postgres, after=parts[0][0], upto=parts[0][1]), start=starts[0])
        walks = [first] + [other.result() for other in others]
    return _joined(state.checkpoint, walks)


def _walk_part(postgres: bool, target: str, shared: str, after: int, upto: int | None, start: Anchor,
               head: Anchor | None) -> Walk:
    """One stretch, in a process of its own, in the snapshot `shared` (PostgreSQL)."""
    if postgres:
        import psycopg
        from psycopg import sql

        with psycopg.connect(target) as raw:
            raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            raw.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(shared)))
            return walk(_rows(raw, True, after=after, upto=upto), start=start, head=head)
    import sqlite3

    database = sqlite3.connect(target, timeout=10)
    try:
        database.execute("BEGIN")
        return walk(_rows(database, False, after=after, upto=upto), start=start, head=head)
    finally:
        database.close()


def _joined(start: Anchor, walks: list[Walk]) -> Walk:
    """The walks of consecutive stretches as one."""
    joined = Walk(start)
    for part in walks:
        joined.checked += part.checked
        joined.first = joined.first or part.first
        joined.last = part.last or joined.last
        for problem in part.problems:
            joined.add(problem)
        for wrong, count in part.counts.items():
            joined.counts[wrong] = joined.counts.get(wrong, 0) + count - sum(
                1 for p in part.problems if p.wrong == wrong)
    return joined


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
