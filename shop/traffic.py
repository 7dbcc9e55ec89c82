"""Shoppers against the gateway: browsing, viewing products, searching (hits and misses),
filling carts and checking out, with exponential think time between steps.

The load is an open model: sessions arrive as a Poisson process whose rate makes the request
rate `rps` on average, whatever the shop's answer times; a session arriving while
`concurrency` sessions are running is dropped and counted, never queued, so an overloaded
shop shows up as drops and latency rather than as a quietly lower rate. Requests go through
`shop.httpclient` (keep-alive, a tenth of httpx's CPU per request), so the generator leaves
the machine's cores to the shop it measures.

Shoppers may sign in first (`logins`, a share of sessions; `python -m shop.traffic` signs in
at the start of 5 % of sessions by default), now and then with a mistyped password, so that the
gateway's sign-in log and `shop_logins_total` have something to show. A refused sign-in is an
answer the shop is meant to give, not a failed request.

Run it with `python -m shop.traffic --base-url URL --rps N --duration S [--json]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from shop.gateway import DEFAULT_DEMO_PASSWORD, DEMO_USERS
from shop.httpclient import HttpClientError, Origin
from shop.products import SEARCH_HITS, SEARCH_MISSES
from shop.traffic_report import Recorder, TrafficReport

# Share of sessions of each kind; most look around, a fifth buy.
SESSION_MIX: dict[str, float] = {"browse": 0.5, "search": 0.3, "buy": 0.2}
SEARCH_MISS_SHARE = 0.25
DEFAULT_THINK_TIME = 0.5
DEFAULT_CONCURRENCY = 256
PROGRESS_EVERY = 5.0
_NAP = 0.1
REQUEST_TIMEOUT = 10.0
DEFAULT_LOGIN_SHARE = 0.05  # of sessions, from the command line
MISTYPED_PASSWORD_SHARE = 0.02  # of sign-ins


def parse_mix(text: str) -> dict[str, float]:
    """`browse=0.5,search=0.3,buy=0.2` as a mix; ValueError naming what is wrong."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, weight = part.partition("=")
        if kind not in SESSION_MIX:
            raise ValueError(f"unknown session kind {kind!r}: use {', '.join(SESSION_MIX)}")
        try:
            mix[kind] = float(weight)
        except ValueError:
            raise ValueError(f"weight of {kind!r} is not a number: {weight!r}") from None
    return check_mix(mix)


def check_mix(mix: dict[str, float]) -> dict[str, float]:
    if any(w < 0 for w in mix.values()) or not sum(mix.values()) > 0 or not set(mix) <= set(SESSION_MIX):
        raise ValueError(f"a session mix needs kinds from {', '.join(SESSION_MIX)} with weights >= 0, "
                         f"not all 0; got {mix}")
    return mix


def plan_session(rng: random.Random, mix: dict[str, float] = SESSION_MIX) -> list[str]:
    """The steps of one session, decided when it arrives."""
    kind = rng.choices(list(mix), list(mix.values()))[0]
    if kind == "browse":
        return ["browse"] * rng.randint(1, 2) + ["product"] * rng.randint(1, 3)
    if kind == "search":
        return ["search"] * rng.randint(1, 2) + ["product"] * rng.randint(0, 2)
    return (["browse"] + ["product"] * rng.randint(1, 2) + ["cart"] + ["add_item"] * rng.randint(1, 3)
            + ["checkout"])


def mean_session_length(seed: int | None, mix: dict[str, float] = SESSION_MIX, samples: int = 4000) -> float:
    rng = random.Random(seed)
    return sum(len(plan_session(rng, mix)) for _ in range(samples)) / samples


_JSON_HEADERS = {"Content-Type": "application/json"}


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


class Shopper:
    """One session: remembers the products it has seen and its cart."""

    def __init__(self, client: Origin, rng: random.Random, recorder: Recorder,
                 catalog_pages: list[int], timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.rng = rng
        self.recorder = recorder
        self.pages = catalog_pages  # shared one-element list: pages learnt from any answer
        self.seen: list[int] = []
        self.cart_id: str | None = None

    async def step(self, name: str) -> None:
        if name == "browse":
            page = self.rng.randint(1, self.pages[0])
            body = await self._call(name, "GET", f"/api/products?page={page}")
            if body:
                self.pages[0] = max(1, int(body.get("pages", self.pages[0])))
                self.seen += [item["id"] for item in body.get("items", [])]
        elif name == "product":
            if self.seen:
                await self._call(name, "GET", f"/api/products/{self.rng.choice(self.seen)}")
        elif name == "search":
            words = SEARCH_MISSES if self.rng.random() < SEARCH_MISS_SHARE else SEARCH_HITS
            body = await self._call(name, "GET", "/api/search?" + urlencode({"q": self.rng.choice(words)}))
            if body:
                self.seen += [item["id"] for item in body.get("items", [])[:5]]
        elif name == "cart":
            body = await self._call(name, "POST", "/api/carts", {})
            self.cart_id = body.get("id") if body else None
        elif name == "add_item":
            if self.cart_id and self.seen:
                item = {"product_id": self.rng.choice(self.seen), "quantity": self.rng.randint(1, 3)}
                await self._call(name, "POST", f"/api/carts/{self.cart_id}/items", item)
        elif name == "checkout" and self.cart_id:
            await self._checkout()

    async def login(self, password: str) -> None:
        """Sign in as one of the demo's shoppers, with a mistyped password now and then."""
        if self.rng.random() < MISTYPED_PASSWORD_SHARE:
            password += "-typo"
        payload = {"username": self.rng.choice(DEMO_USERS), "password": password}
        started = time.perf_counter()
        try:
            answer = await self.client.request("POST", "/login", content=_json(payload),
                                               headers=_JSON_HEADERS, timeout=self.timeout)
        except HttpClientError as exc:
            self.recorder.record("login", time.perf_counter() - started, False, type(exc).__name__)
            return
        ok = answer.status_code in (200, 401)  # a refused password is the shop working as it should
        self.recorder.record("login", time.perf_counter() - started, ok,
                             None if ok else f"login HTTP {answer.status_code}")

    async def _checkout(self) -> None:
        started = time.perf_counter()
        try:
            answer = await self.client.request("POST", "/api/checkout", headers=_JSON_HEADERS,
                                               content=_json({"cart_id": self.cart_id}), timeout=self.timeout)
        except HttpClientError as exc:
            self.recorder.record("checkout", time.perf_counter() - started, False, type(exc).__name__)
            self.recorder.checkouts["failed"] += 1
            return
        elapsed = time.perf_counter() - started
        # A declined card is the shop working as it should: not a failed request.
        outcome = {201: "completed", 402: "declined"}.get(answer.status_code, "failed")
        self.recorder.checkouts[outcome] += 1
        ok = outcome != "failed"
        self.recorder.record("checkout", elapsed, ok, None if ok else f"checkout HTTP {answer.status_code}")

    async def _call(self, step: str, method: str, target: str,
                    payload: dict[str, Any] | None = None) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            if payload is None:
                answer = await self.client.request(method, target, timeout=self.timeout)
            else:
                answer = await self.client.request(method, target, content=_json(payload),
                                                   headers=_JSON_HEADERS, timeout=self.timeout)
        except HttpClientError as exc:
            self.recorder.record(step, time.perf_counter() - started, False, type(exc).__name__)
            return None
        elapsed = time.perf_counter() - started
        if answer.status_code >= 400:
            self.recorder.record(step, elapsed, False, f"{step} HTTP {answer.status_code}")
            return None
        self.recorder.record(step, elapsed, True)
        try:
            body = answer.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


async def run_traffic(
    base_url: str, *, rps: float, duration: float, think_time: float = DEFAULT_THINK_TIME,
    seed: int | None = None, on_progress: Callable[[TrafficReport], None] | None = None,
    stop: asyncio.Event | None = None, concurrency: int = DEFAULT_CONCURRENCY,
    progress_every: float = PROGRESS_EVERY, timeout: float = REQUEST_TIMEOUT,
    mix: dict[str, float] | None = None, logins: float = 0.0, password: str = DEFAULT_DEMO_PASSWORD,
) -> TrafficReport:
    """Drive shoppers against `base_url` at about `rps` requests per second for `duration`
    seconds (0: until `stop` is set); `on_progress` gets a report of each live window. `mix`
    weighs the session kinds (browse, search, buy); {"buy": 1} makes every session check out.
    `logins` is the share of sessions that sign in first, with `password`."""
    if rps <= 0:
        raise ValueError(f"rps must be positive, got {rps}")
    if duration < 0 or think_time < 0 or concurrency < 1:
        raise ValueError("duration and think_time must be >= 0 and concurrency >= 1")
    stop = stop or asyncio.Event()
    rng = random.Random(seed)
    mix = check_mix(dict(mix or SESSION_MIX))
    arrival_rate = rps / mean_session_length(seed, mix)
    recorder = Recorder()
    pages = [10]
    running: set[asyncio.Task[None]] = set()
    client = Origin(base_url, max_connections=concurrency)
    try:
        started = time.monotonic()
        deadline = started + duration if duration > 0 else float("inf")
        reporter = asyncio.ensure_future(_report_progress(recorder, started, progress_every, on_progress))

        ending = asyncio.Event()

        async def session() -> None:
            shopper = Shopper(client, random.Random(rng.random()), recorder, pages, timeout)
            if logins and shopper.rng.random() < logins:
                await shopper.login(password)
            for index, step in enumerate(plan_session(shopper.rng, mix)):
                if stop.is_set() or ending.is_set():
                    return
                if index and think_time:
                    await asyncio.sleep(shopper.rng.expovariate(1.0 / think_time))
                await shopper.step(step)

        def finished(task: asyncio.Task[None]) -> None:
            running.discard(task)
            slot_free.set()

        slot_free = asyncio.Event()
        next_arrival = started
        while not stop.is_set() and (now := time.monotonic()) < deadline:
            if next_arrival > now:
                # Short naps keep Ctrl-C and `stop` responsive whatever the arrival rate.
                await asyncio.sleep(min(next_arrival - now, deadline - now, _NAP))
            elif len(running) >= concurrency:
                next_arrival = await _wait_for_a_slot(slot_free, min(deadline - now, _NAP), next_arrival,
                                                      lambda: rng.expovariate(arrival_rate), recorder)
            else:
                recorder.sessions_started += 1
                task = asyncio.ensure_future(session())
                running.add(task)
                task.add_done_callback(finished)
                next_arrival += rng.expovariate(arrival_rate)
        ended = time.monotonic()
        ending.set()  # sessions end after the request they are in
        if running:
            await asyncio.wait(running, timeout=timeout + 1)
        for task in running:
            task.cancel()
        reporter.cancel()
    finally:
        client.close()
    return recorder.report(ended - started, ended - started)


async def _wait_for_a_slot(slot_free: asyncio.Event, timeout: float, next_arrival: float,
                           gap: Callable[[], float], recorder: Recorder) -> float:
    """Wait (at most `timeout`) for a running session to end, then drop the sessions that
    arrived meanwhile but the last one, which takes the free slot. Returns its arrival time.

    Waiting on the slot rather than on each arrival keeps a saturated run (a huge `rps` with
    `concurrency` as the real limit) from spinning through arrivals it can only drop."""
    slot_free.clear()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(slot_free.wait(), timeout)
    now = time.monotonic()
    while (following := next_arrival + gap()) <= now:
        recorder.sessions_dropped += 1
        next_arrival = following
    return next_arrival


async def _report_progress(recorder: Recorder, started: float, every: float,
                           on_progress: Callable[[TrafficReport], None] | None) -> None:
    if on_progress is None:
        return
    mark, mark_time = recorder.mark(), time.monotonic()
    while True:
        await asyncio.sleep(every)
        now = time.monotonic()
        on_progress(recorder.report(now - mark_time, now - started, since=mark))
        mark, mark_time = recorder.mark(), now


def run_cli(base_url: str, *, rps: float, duration: float, think_time: float, concurrency: int,
            seed: int | None, as_json: bool, mix: dict[str, float] | None = None,
            logins: float = DEFAULT_LOGIN_SHARE) -> int:
    """Run traffic from the command line: live lines on stderr, the final report on stdout.
    Exit code 0 when at least 99 % of requests succeeded, 1 otherwise."""

    async def main() -> TrafficReport:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_traffic(base_url, rps=rps, duration=duration, think_time=think_time, seed=seed,
                                 concurrency=concurrency, stop=stop, mix=mix, logins=logins,
                                 password=os.environ.get("SHOP_DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD,
                                 on_progress=lambda r: print(r.line(), file=sys.stderr, flush=True))

    try:
        import uvloop
    except ImportError:
        report = asyncio.run(main())
    else:
        report = uvloop.run(main())
    print(json.dumps(report.as_dict(), indent=2) if as_json else report.table())
    return 0 if report.requests and report.success_ratio >= 0.99 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shop.traffic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8200", help="the gateway")
    parser.add_argument("--rps", type=float, required=True, help="target requests per second")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 runs until Ctrl-C")
    parser.add_argument("--think-time", type=float, default=DEFAULT_THINK_TIME,
                        help="mean seconds between a session's steps (exponential); 0 for benchmarks")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help="sessions at most at once")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--mix", default="",
                        help="session kinds and weights, e.g. browse=0.5,search=0.3,buy=0.2")
    parser.add_argument("--logins", type=float, default=DEFAULT_LOGIN_SHARE,
                        help="share of sessions that sign in first (0 to 1)")
    parser.add_argument("--json", action="store_true", help="final report as JSON")
    args = parser.parse_args(argv)
    if args.rps <= 0 or args.duration < 0 or args.think_time < 0 or args.concurrency < 1:
        parser.error("--rps must be positive, --duration and --think-time >= 0, --concurrency >= 1")
    if not 0 <= args.logins <= 1:
        parser.error("--logins is a share of sessions, from 0 to 1")
    try:
        mix = parse_mix(args.mix) if args.mix else None
    except ValueError as exc:
        parser.error(f"--mix: {exc}")
    return run_cli(args.base_url, rps=args.rps, duration=args.duration, think_time=args.think_time,
                   concurrency=args.concurrency, seed=args.seed, as_json=args.json, mix=mix,
                   logins=args.logins)


if __name__ == "__main__":
    sys.exit(main())
