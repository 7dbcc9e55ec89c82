"""The event log's hash chain: what it costs a writer, and how long checking a big log takes.

    .venv/bin/python bench/events_verify.py [--events 1000000] [--writes 3000] [--postgres] [--no-save]

1. **Writing.** `events.service.record` into a fresh store, with the chain (the flush hook of
   `events/append.py`: lock the head, hash, move the head) and without it (the hook removed:
   the rows as opsplane wrote them before the chain), in the same run, alternating, three
   rounds each, the median kept. Two shapes: one event per transaction (a command, an API
   route) and 100 per transaction (the health worker's and the runtime recorder's batches).
2. **Verifying.** A store filled with `--events` events of the kinds and detail sizes the
   log holds (state changes, alerts, notifications, deploys, runtime exits), chained with
   the same hash function and written in bulk; then the walk `opsplane events verify` runs
   (`events.verify.verify_store`), timed, beside the floor under it: the same rows read
   through the same cursor without hashing. Last, the command itself end to end
   (`opsplane events verify --json`: start-up, walk, the `events.verified` event).

SQLite in a temporary directory; `--postgres` also runs both on a temporary PostgreSQL
cluster (initdb, loopback, a free port). Target: verifying 1,000,000 events in under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _common import machine  # noqa: E402
from sqlalchemy import event as sa_event  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from opsplane.events import append, service  # noqa: E402
from opsplane.events.chain import GENESIS, canonical_ts, event_hash, plain  # noqa: E402
from opsplane.events.verify import _PG_TS, COLUMNS, select_rows, snapshot, verify_store  # noqa: E402
from opsplane.store import Store  # noqa: E402

TARGET_SECONDS = 10.0
ROUNDS = 3
T0 = datetime(2026, 1, 1, tzinfo=UTC)

# (kind, target, service, outcome, details): the shapes the log holds most
SHAPES: list[tuple[str, str, str | None, str, dict[str, Any]]] = [
    ("check.state_changed", "orders:http", "orders", "CRITICAL",
     {"from": "OK", "reason": "GET http://127.0.0.1:8002/health: connection refused", "duration_ms": 2.31}),
    ("alert.firing", "HighErrorRate{service=\"orders\"}", "orders", "firing",
     {"labels": {"alertname": "HighErrorRate", "severity": "P1", "service": "orders", "env": "production"},
      "value": 0.0731, "summary": "Error rate above 5% for 5 minutes"}),
    ("notification.sent", "slack:#incidents", "orders", "ok",
     {"channel": "slack", "group": "incident-17", "status": "trigger", "attempt": 1, "latency_ms": 184}),
    ("runtime.exited", "catalog", "catalog", "failed",
     {"code": 137, "signal": "SIGKILL", "instance": 2, "restarts": 3, "uptime_s": 5403.2}),
    ("deploy.step", "deploy:42", "orders", "ok",
     {"step": 3, "kind": "shift", "percent": 25.0, "from": "v1.4.2", "to": "v1.5.0",
      "verdicts": ["ok", "ok"]}),
]


# --- writing ----------------------------------------------------------------------------------


def chaining(on: bool) -> None:
    registered = sa_event.contains(Session, "before_flush", append._before_flush)
    if on and not registered:
        sa_event.listen(Session, "before_flush", append._before_flush)
    elif not on and registered:
        sa_event.remove(Session, "before_flush", append._before_flush)


def write_rate(url: str, count: int, per_transaction: int, chained: bool) -> tuple[float, float]:
    """Events per second through `record`, `per_transaction` to a commit, and this process's
    CPU time per event in µs (on a busy machine the steadier figure)."""
    store = Store.open(url)
    chaining(chained)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        for first in range(0, count, per_transaction):
            with store.session() as session:
                for n in range(first, min(count, first + per_transaction)):
                    kind, target, svc, outcome, details = SHAPES[n % len(SHAPES)]
                    service.record(session, kind=kind, actor="opsplane", target=target, service=svc,
                                   outcome=outcome, details=details)
        return count / (time.perf_counter() - started), (time.process_time() - cpu) / count * 1e6
    finally:
        chaining(True)
        store.close()


def writing(fresh: Callable[[], str], count: int) -> list[dict[str, Any]]:
    results = []
    for per in (1, 100):
        rates: dict[bool, list[float]] = {True: [], False: []}
        cpus: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(ROUNDS):
            for chained in (False, True):
                rate, cpu = write_rate(fresh(), count, per, chained)
                rates[chained].append(rate)
                cpus[chained].append(cpu)
        off, on = statistics.median(rates[False]), statistics.median(rates[True])
        cpu_off, cpu_on = statistics.median(cpus[False]), statistics.median(cpus[True])
        results.append({"per_transaction": per, "events": count, "without_chain_per_s": off,
                        "with_chain_per_s": on, "rounds": ROUNDS, "all_without": rates[False],
                        "all_with": rates[True], "cpu_us_without": cpu_off, "cpu_us_with": cpu_on,
                        "cpu_cost_us_per_event": cpu_on - cpu_off})
    return results


# --- verifying --------------------------------------------------------------------------------


def fill(store: Store, count: int) -> None:
    """`count` chained events written in bulk (the hashes as `record` makes them)."""
    batch = 20_000
    prev = GENESIS
    from opsplane.events.tables import Event

    for first in range(1, count + 1, batch):
        rows = []
        for n in range(first, min(count, first + batch - 1) + 1):
            kind, target, svc, outcome, details = SHAPES[n % len(SHAPES)]
            details = {**details, "n": n}
            ts = T0 + timedelta(milliseconds=250 * n)
            digest = event_hash(n, canonical_ts(ts), kind, "opsplane", target, svc, outcome, plain(details),
                                prev)
            rows.append({"id": n, "ts": ts, "actor": "opsplane", "kind": kind, "target": target,
                         "service": svc, "outcome": outcome, "details": details, "prev_hash": prev,
                         "hash": digest})
            prev = digest
        with store.engine.begin() as connection:
            connection.execute(Event.__table__.insert(), rows)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE event_chain SET last_id = :id, last_hash = :hash WHERE id = 1"),
                           {"id": count, "hash": prev})


def read_floor(store: Store) -> float:
    """Seconds to read every row through the verifier's cursor, parsing nothing, hashing nothing."""
    started = time.perf_counter()
    with snapshot(store) as connection:
        postgres = connection.dialect.name == "postgresql"
        columns = (COLUMNS.format(ts=_PG_TS, details="details::text") if postgres
                   else COLUMNS.format(ts="ts", details="details"))
        raw = connection.connection.driver_connection
        assert raw is not None
        cursor = raw.cursor(name="floor") if postgres else raw.cursor()
        cursor.arraysize = 10_000
        mark = "%s" if postgres else "?"
        cursor.execute(f"SELECT {columns} FROM events WHERE id > {mark} ORDER BY id", (0,))
        while cursor.fetchmany():
            pass
        cursor.close()
    return time.perf_counter() - started


def read_and_parse(store: Store) -> float:
    """Seconds to read every row and turn it into the walk's rows (times, JSON), hashing nothing."""
    started = time.perf_counter()
    with snapshot(store) as connection:
        for _ in select_rows(connection, after=0):
            pass
    return time.perf_counter() - started


def verifying(url: str, count: int) -> dict[str, Any]:
    store = Store.open(url)
    try:
        filled = time.perf_counter()
        fill(store, count)
        fill_s = time.perf_counter() - filled
        floor = read_floor(store)
        parse = read_and_parse(store)
        started = time.perf_counter()
        verification = verify_store(store)
        walk_s = time.perf_counter() - started
        assert verification.intact and verification.result.checked == count, verification.summary()
    finally:
        store.close()
    env = {**os.environ, "OPSPLANE_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    ran = subprocess.run([sys.executable, "-m", "opsplane", "events", "verify", "--json"],  # noqa: S603
                         capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), timeout=600)
    command_s = time.perf_counter() - started
    said = json.loads(ran.stdout)
    assert ran.returncode == 0 and said["intact"] and said["checked"] == count, ran.stderr
    return {"events": count, "fill_s": fill_s, "read_floor_s": floor, "read_and_parse_s": parse,
            "verify_s": walk_s, "command_s": command_s, "per_event_us": walk_s / count * 1e6,
            "target_met": command_s < TARGET_SECONDS}


# --- the run ----------------------------------------------------------------------------------


def stores(postgres: bool, tmp: Path) -> Iterator[tuple[str, Callable[[], str]]]:
    counter = iter(range(1_000_000))
    yield "SQLite (WAL)", lambda: f"sqlite:///{tmp}/bench-{next(counter)}.db"
    if postgres:
        from opsplane.drivers.sandbox.postgres import TemporaryPostgres

        with TemporaryPostgres(tmp / "pg", password="bench-password") as cluster:
            def fresh() -> str:
                name = f"bench_{next(counter)}"
                cluster.execute(f'CREATE DATABASE "{name}"')
                return cluster.url(name)

            yield f"PostgreSQL {cluster.execute('SHOW server_version')[0][0]} (loopback TCP)", fresh


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = ["## Event log hash chain", "",
             f"Measured on {date.today().isoformat()}: {machine().describe()}.", "",
             "```", command, "```", "",
             "Writing through `events.service.record`, the chain off (the flush hook removed: the rows as "
             f"written before the chain) and on, alternating, median of {ROUNDS} rounds:", "",
             "| Store | Events per transaction | Without chain: events/s, CPU per event | "
             "With chain: events/s, CPU per event | Chain's CPU per event |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for r in results:
        for w in r["writing"]:
            lines.append(f"| {r['store']} | {w['per_transaction']} | {w['without_chain_per_s']:,.0f}, "
                         f"{w['cpu_us_without']:.0f} µs | {w['with_chain_per_s']:,.0f}, "
                         f"{w['cpu_us_with']:.0f} µs | "
                         f"{w['cpu_cost_us_per_event']:+.0f} µs |")
    lines += ["", "Verifying a log of chained events (the kinds and detail sizes the log holds):", "",
              "| Store | Events | Read rows only | Read and parse | Walk (`verify_store`) | "
              "`opsplane events verify --json` | Target < 10 s |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        v = r["verifying"]
        lines.append(f"| {r['store']} | {v['events']:,} | {v['read_floor_s']:.1f} s | "
                     f"{v['read_and_parse_s']:.1f} s | {v['verify_s']:.1f} s "
                     f"({v['per_event_us']:.1f} µs/event) | {v['command_s']:.1f} s | "
                     f"{'met' if v['target_met'] else 'NOT met'} |")
    load = os.getloadavg()
    lines += ["", f"Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the verified log")
    parser.add_argument("--writes", type=int, default=3000, help="events written per writing round")
    parser.add_argument("--postgres", action="store_true", help="also on a temporary PostgreSQL cluster")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    command = ".venv/bin/python bench/events_verify.py" + "".join(f" {a}" for a in argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="opsplane-bench-events-") as tmp:
        for name, fresh in stores(args.postgres, Path(tmp)):
            print(f"[{time.strftime('%H:%M:%S')}] {name}: writing", file=sys.stderr)
            written = writing(fresh, args.writes)
            print(f"[{time.strftime('%H:%M:%S')}] {name}: verifying {args.events:,} events", file=sys.stderr)
            results.append({"store": name, "writing": written, "verifying": verifying(fresh(), args.events)})
    print(markdown(results, command))
    if not args.no_save:
        out = ROOT / "bench" / "results" / f"events-verify-{date.today().isoformat()}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"measured_at": datetime.now(UTC).isoformat(),
                                   "machine": machine().describe(), "runs": results}, indent=2))
        print(f"\nfull results: {out}")
    return 0 if all(r["verifying"]["target_met"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
