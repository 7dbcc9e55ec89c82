"""Recording canary steps from the real shop, and cutting them into steps to replay.

For each pair (a stable release and a canary of one service), two shop processes run side by
side behind one nginx route with equal weights, on the platform's PostgreSQL, Redis and
payments, under `2 x rate` requests a second from the benchmark's load (`_deploy_load`). Every
10 s each process's `/metrics` is read and the interval's figures taken as counter differences,
as `opsplane.deploy.collect` takes them from `serve`'s samples: requests and 5xx answers
(`http_requests_total`), the sum of durations and the duration histogram, `/health` and
`/metrics` left out. The pairs of one service are recorded at the same time, so they share the
machine's state minute by minute; one service after the other, so as not to overload it.

A recording is saved in the replay format `bench/deploy_analysis.py --recorded` reads, with the
whole stream under `recording` and, as `analyses`, the stream cut into consecutive steps of 2 to 5
minutes that do not overlap (the independent steps it holds). `resample` cuts many more steps
from it: windows of 12 to 30 intervals at random starts, drawn with replacement, so steps
overlap and share intervals; they are not independent evidence (see docs/benchmarks.md).
"""

from __future__ import annotations

import random
import re
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import Child, ChildFailed, Children, free_port, wait_for_http
from _deploy_load import Load, LoadAverage
from _deploy_safety import Platform

from opsplane.deploy.analysis import Interval
from opsplane.deploy.collect import OWN_ROUTES
from opsplane.metrics.exposition import parse_samples

INTERVAL_SECONDS = 10.0
SHORTEST, LONGEST = 12, 30  # a step: 2 to 5 minutes of 10 s intervals
WARM_UP = 30.0


@dataclass(frozen=True)
class Pair:
    """A stable release and a canary of one service, recorded side by side."""

    kind: str
    service: str
    stable: str
    canary: str

    @property
    def slug(self) -> str:
        return self.kind.replace(" ", "-")

    @property
    def canary_is_worse(self) -> bool:
        return self.canary != self.stable


PAIRS = (Pair("catalog v1-vs-v1", "catalog", "v1", "v1"), Pair("catalog v2-slow", "catalog", "v1", "v2-slow"),
         Pair("orders v1-vs-v1", "orders", "v1", "v1"), Pair("orders v2-bad", "orders", "v1", "v2-bad"))


# --- figures from a metrics page ---------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """One process's request counters at one reading."""

    requests: float
    errors: float
    latency_sum: float
    buckets: tuple[tuple[float, float], ...]

    def since(self, earlier: Totals) -> Interval:
        """What was counted between `earlier` and this reading; a counter that went down means the
        process restarted, which a recording cannot cross."""
        deltas = [self.requests - earlier.requests, self.errors - earlier.errors,
                  self.latency_sum - earlier.latency_sum,
                  *(now - then for (_, now), (_, then) in zip(self.buckets, earlier.buckets, strict=True))]
        if min(deltas) < -1e-9:
            raise ChildFailed("a shop process's counters went down: it restarted during the recording")
        return Interval(deltas[0], deltas[1], round(max(deltas[2], 0.0), 6),
                        tuple((le, now - then) for (le, now), (_, then)
                              in zip(self.buckets, earlier.buckets, strict=True)))


def totals(page: str) -> Totals:
    """The shoppers' requests counted on a shop process's metrics page (own routes left out)."""
    own = re.compile(OWN_ROUTES)
    requests = errors = latency = 0.0
    buckets: dict[float, float] = {}
    for labels, value in parse_samples(page):
        found = dict(labels)
        name = found.get("__name__", "")
        if not name.startswith("http_request") or own.fullmatch(found.get("route", "")):
            continue
        if name == "http_requests_total":
            requests += value
            if found.get("status", "").startswith("5"):
                errors += value
        elif name == "http_request_duration_seconds_sum":
            latency += value
        elif name == "http_request_duration_seconds_bucket":
            le = float(found["le"])
            buckets[le] = buckets.get(le, 0.0) + value
    return Totals(requests, errors, latency, tuple(sorted(buckets.items())))


# --- the processes -----------------------------------------------------------------------


@dataclass
class Side:
    pair: Pair
    role: str  # stable or canary
    release: str
    port: int
    child: Child
    last: Totals | None = None


def start_pairs(platform: Platform, pairs: Sequence[Pair], children: Children, tmp: Path) -> list[Side]:
    """Two shop processes per pair, each answering on a port of its own."""
    sides: list[Side] = []
    for pair in pairs:
        for role, release in (("stable", pair.stable), ("canary", pair.canary)):
            port = free_port()
            child = children.start(Child(
                f"{pair.slug} {role}", [sys.executable, "-m", "shop", pair.service, "--host", "127.0.0.1",
                                        "--port", str(port)],
                log=tmp / f"{pair.slug}-{role}.log", env=shop_environ(platform, release)))
            sides.append(Side(pair, role, release, port, child))
    for side in sides:
        wait_for_http(f"http://127.0.0.1:{side.port}/health", side.child, timeout=60)
    return sides


def shop_environ(platform: Platform, release: str) -> dict[str, str]:
    """What the demo's inventory gives the shop's processes, with `release` as SHOP_VERSION."""
    import os

    stack = platform.stack
    assert stack.redis is not None
    return {**os.environ, "SHOP_VERSION": release, "SHOP_DATABASE_URL": platform.database_url(),
            "SHOP_REDIS_URL": stack.redis.url, "SHOP_DATA_DIR": str(stack.base / "shop"),
            "SHOP_ADMIN_TOKEN": stack.admin_token(),
            **{f"SHOP_{name.upper()}_URL": platform.url(name) for name in ("catalog", "orders", "payments")}}


def start_proxy(sides: Sequence[Side], children: Children, tmp: Path) -> dict[Pair, int]:
    """nginx with one route per pair, both processes at weight 1; the port of each route."""
    from opsplane.config.models import Proxy
    from opsplane.drivers.traffic import Backend, Route, open_traffic

    directory = tmp / "recording-proxy"
    directory.mkdir()
    listen: dict[Pair, int] = {}
    routes = []
    for pair in dict.fromkeys(side.pair for side in sides):
        listen[pair] = free_port()
        backends = [Backend(f"{pair.service}.{n}", "127.0.0.1", side.port, 1, side.release)
                    for n, side in enumerate(s for s in sides if s.pair == pair)]
        routes.append(Route(pair.slug, "127.0.0.1", listen[pair], tuple(backends)))
    driver = open_traffic("recording", Proxy.model_validate({"engine": "nginx"}), directory=directory)
    driver.prepare(routes)
    proxy = children.start(Child("nginx (recording)", driver.run_argv(), log=directory / "nginx.log",
                                 cwd=directory))
    for port in listen.values():
        _wait_port(port, proxy)
    return listen


def _wait_port(port: int, child: Child, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while True:
        child.check_alive()
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if time.monotonic() > deadline:
            raise ChildFailed(f"{child.name} did not listen on {port}:\n{child.log_tail()}")
        time.sleep(0.05)


# --- recording ---------------------------------------------------------------------------


def record(platform: Platform, pairs: Sequence[Pair], *, minutes: float, rate: float, clients: int, seed: int,
           children: Children, tmp: Path, progress: Callable[[str], None]) -> dict[Pair, dict[str, Any]]:
    """`minutes` of 10 s intervals of every pair at `rate` requests a second per release."""
    tmp.mkdir(parents=True, exist_ok=True)
    sides = start_pairs(platform, pairs, children, tmp)
    listen = start_proxy(sides, children, tmp)
    streams: dict[Pair, dict[str, list[Interval]]] = {p: {"stable": [], "canary": []} for p in pairs}
    loads = [Load(f"http://127.0.0.1:{listen[p]}", platform.send(p.service), rate=2 * rate, clients=clients,
                  seed=seed + n, keep=False) for n, p in enumerate(pairs)]
    count = int(minutes * 60 / INTERVAL_SECONDS)
    progress(f"recording {', '.join(p.kind for p in pairs)}: {count} intervals of {INTERVAL_SECONDS:g} s "
             f"at {rate:g} requests/s per release ({minutes:g} min, after {WARM_UP:g} s of warm-up)")
    began = time.time()
    with LoadAverage() as loadavg:
        for load in loads:
            load.__enter__()
        try:
            time.sleep(WARM_UP)
            with httpx.Client(trust_env=False, timeout=10) as client:
                due = time.monotonic()
                for number in range(count + 1):
                    _read(client, sides, streams, first=number == 0)
                    if number and number % 30 == 0:
                        progress(f"  {number}/{count} intervals; load average {loadavg.readings[-1]:.2f}")
                    due += INTERVAL_SECONDS
                    time.sleep(max(0.0, due - time.monotonic()))
        finally:
            for load in loads:
                load.stop()
    answered = {p: load.counts for p, load in zip(pairs, loads, strict=True)}
    return {p: recording(p, streams[p], began=began, rate=rate, answered=answered[p],
                         load_average=loadavg.readings, seed=seed) for p in pairs}


def _read(client: httpx.Client, sides: Sequence[Side], streams: dict[Pair, dict[str, list[Interval]]],
          *, first: bool) -> None:
    read = []
    for side in sides:
        side.child.check_alive()
        read.append(totals(client.get(f"http://127.0.0.1:{side.port}/metrics").text))
    for side, now in zip(sides, read, strict=True):
        if not first and side.last is not None:
            streams[side.pair][side.role].append(now.since(side.last))
        side.last = now


def recording(pair: Pair, stream: dict[str, list[Interval]], *, began: float, rate: float,
              answered: dict[tuple[str | None, int], int], load_average: Sequence[float],
              seed: int) -> dict[str, Any]:
    """A pair's recording in the replay format: the whole stream, and its independent steps."""
    from _common import machine

    stable, canary = stream["stable"], stream["canary"]
    return {
        "interval_seconds": INTERVAL_SECONDS,
        "recorded": {
            "kind": pair.kind, "service": pair.service, "stable": pair.stable, "canary": pair.canary,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(began)),
            "machine": machine().describe(), "rate_per_release": rate,
            "intervals": len(stable),
            "answers": {f"{version} {status}": n for (version, status), n in sorted(
                answered.items(), key=lambda item: (str(item[0][0]), item[0][1]))},
            "load_average": {"min": min(load_average), "max": max(load_average),
                             "mean": round(sum(load_average) / len(load_average), 2)},
            "load": "catalog: product pages, products, searches; orders: checkouts of prepared carts",
        },
        "recording": {"stable": [compact(i) for i in stable], "canary": [compact(i) for i in canary]},
        "analyses": consecutive_steps(pair, stable, canary, seed),
    }


def compact(interval: Interval) -> dict[str, Any]:
    """`Interval.as_dict` with whole counts written as integers."""
    data = interval.as_dict()

    def number(value: float) -> float | int:
        return int(value) if float(value).is_integer() else value

    return {"requests": number(data["requests"]), "errors": number(data["errors"]),
            "latency_sum": data["latency_sum"],
            "buckets": [[le, number(count)] for le, count in data["buckets"]]}


def consecutive_steps(pair: Pair, stable: Sequence[Any], canary: Sequence[Any],
                      seed: int) -> list[dict[str, Any]]:
    """The stream cut into steps of 12 to 30 intervals that do not overlap (a remainder too short
    for a step is left out)."""
    rng = random.Random(f"steps:{seed}:{pair.kind}")
    steps: list[dict[str, Any]] = []
    start = 0
    while True:
        length = rng.randint(SHORTEST, LONGEST)
        if start + length > len(stable):
            break
        steps.append(_step(pair, f"{pair.slug}-{len(steps):03d}", stable, canary, start, length))
        start += length
    return steps


def _step(pair: Pair, name: str, stable: Sequence[Any], canary: Sequence[Any], start: int,
          length: int) -> dict[str, Any]:
    return {"name": name, "kind": pair.kind, "canary_is_worse": pair.canary_is_worse, "start": start,
            "stable": [_plain(i) for i in stable[start:start + length]],
            "canary": [_plain(i) for i in canary[start:start + length]]}


def _plain(interval: Any) -> dict[str, Any]:
    return compact(interval) if isinstance(interval, Interval) else interval


def resample(data: dict[str, Any], *, steps: int, seed: int) -> dict[str, Any]:
    """`steps` windows of 12 to 30 intervals cut from a recording's stream at random starts, with
    replacement, in the replay format."""
    stream = data["recording"]
    stable, canary = stream["stable"], stream["canary"]
    if len(stable) < LONGEST:
        raise ValueError(f"the recording has {len(stable)} intervals; a step needs up to {LONGEST}")
    meta = data["recorded"]
    pair = Pair(meta["kind"], meta["service"], meta["stable"], meta["canary"])
    rng = random.Random(f"resample:{seed}:{pair.kind}")
    cut = []
    for number in range(steps):
        length = rng.randint(SHORTEST, LONGEST)
        start = rng.randint(0, len(stable) - length)
        cut.append(_step(pair, f"{pair.slug}-{number:04d}@{start}+{length}", stable, canary, start, length))
    return {"interval_seconds": data["interval_seconds"],
            "recorded": {**meta, "resampled": {"steps": steps, "seed": seed, "shortest": SHORTEST,
                                               "longest": LONGEST}},
            "analyses": cut}


def save(data: dict[str, Any], path: Path) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")


def data_file(directory: Path, pair: Pair) -> Path:
    return directory / f"deploy-{pair.slug}.json"


def read(path: Path) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(path.read_text())
    return data
