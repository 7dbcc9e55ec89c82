"""The load the deploy benchmark puts on one service through its proxy, and what each answer said.

Clients in threads, each on its own schedule (`rate` requests a second in all, phases spread
evenly), over keep-alive connections. Every answer is kept with its send and receive times
(wall clock, so they line up with the store's events), its status and its `X-Version` header.

What a request is depends on the service: catalog gets a shopper's catalog calls (product
pages, single products, searches); orders gets checkouts, each of a cart written straight into
the shop's database beforehand (`CartSupply`), so that every request orders answers is a
checkout: the route the `v2-bad` release breaks, and no setup requests are counted with them.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from shop.products import SEARCH_HITS, SEARCH_MISSES

HEADER = "X-Version"
CATALOG_PAGES = 15  # 300 products, 20 a page
CATALOG_PRODUCTS = 300


@dataclass(frozen=True)
class Answer:
    sent: float  # wall clock
    received: float
    status: int  # 0: no answer
    version: str | None


Send = Callable[[httpx.Client, random.Random], httpx.Response]


class Load:
    """`rate` requests a second to `base_url` from `clients` threads, each request made by `send`.
    `keep` False counts answers by version and status instead of keeping each."""

    def __init__(self, base_url: str, send: Send, *, rate: float, clients: int, seed: int = 0,
                 keep: bool = True) -> None:
        self.base_url, self.send, self.rate, self.clients = base_url, send, rate, clients
        self.keep = keep
        self.seed = seed
        self.answers: list[Answer] = []
        self.counts: dict[tuple[str | None, int], int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(clients)]

    def __enter__(self) -> Load:
        self.started = time.time()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)
        self.seconds = time.time() - self.started

    def since(self, wall: float) -> list[Answer]:
        """The answers to requests sent at or after `wall`, oldest first."""
        with self._lock:
            return sorted((a for a in self.answers if a.sent >= wall), key=lambda a: a.sent)

    def _run(self, number: int) -> None:
        rng = random.Random(f"{self.seed}:{number}")
        interval = self.clients / self.rate
        due = time.monotonic() + number * interval / self.clients
        with httpx.Client(base_url=self.base_url, trust_env=False, timeout=10) as client:
            while not self._stop.is_set():
                pause = due - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
                due = max(due + interval, time.monotonic() - interval)  # a late client does not burst
                answer = self._one(client, rng)
                with self._lock:
                    if self.keep:
                        self.answers.append(answer)
                    key = (answer.version, answer.status)
                    self.counts[key] = self.counts.get(key, 0) + 1

    def _one(self, client: httpx.Client, rng: random.Random) -> Answer:
        sent = time.time()
        try:
            response = self.send(client, rng)
        except (httpx.HTTPError, NoCarts):
            return Answer(sent, time.time(), 0, None)
        return Answer(sent, time.time(), response.status_code, response.headers.get(HEADER))


def catalog_request(client: httpx.Client, rng: random.Random) -> httpx.Response:
    """A shopper's catalog call: half product pages (the route `v2-slow` slows), 30 % single
    products, 20 % searches (a quarter of them finding nothing)."""
    draw = rng.random()
    if draw < 0.5:
        return client.get("/products", params={"page": rng.randint(1, CATALOG_PAGES)})
    if draw < 0.8:
        return client.get(f"/products/{rng.randint(1, CATALOG_PRODUCTS)}")
    words = SEARCH_MISSES if rng.random() < 0.25 else SEARCH_HITS
    return client.get("/search", params={"q": rng.choice(words)})


class NoCarts(RuntimeError):
    """The supply of prepared carts ran out: the benchmark cannot keep its checkout rate."""


class CartSupply:
    """Open carts of one to three items, written into the shop's database in batches by a
    thread of its own, so that a checkout never waits for its cart and orders sees nothing
    but the checkouts."""

    def __init__(self, database_url: str, *, low: int = 1_000, batch: int = 500) -> None:
        from shop.db import create_engine
        from shop.settings import sqlalchemy_url

        self.engine = create_engine(sqlalchemy_url(database_url), pool_size=1, max_overflow=0)
        self.low, self.batch = low, batch
        self._carts: deque[str] = deque()
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._prices = self._read_prices()
        self._rng = random.Random(7)
        self._fill()
        self._thread = threading.Thread(target=self._refill, daemon=True)
        self._thread.start()

    def take(self) -> str:
        if len(self._carts) < self.low:
            self._wanted.set()
        try:
            return self._carts.popleft()
        except IndexError:
            raise NoCarts("no prepared cart left") from None

    def close(self) -> None:
        self._stop.set()
        self._wanted.set()
        self._thread.join(30)
        self.engine.dispose()

    def _read_prices(self) -> list[tuple[int, int]]:
        from sqlalchemy import select

        from shop.db import products

        with self.engine.connect() as conn:
            return [(int(r.id), int(r.price_cents)) for r in conn.execute(select(products.c.id,
                                                                                 products.c.price_cents))]

    def _fill(self) -> None:
        import uuid

        from shop.db import cart_items, carts

        now = datetime.now(UTC)
        ids = [uuid.uuid4().hex for _ in range(self.batch)]
        lines: list[dict[str, Any]] = []
        for cart in ids:
            for product, price in self._rng.sample(self._prices, self._rng.randint(1, 3)):
                lines.append({"cart_id": cart, "product_id": product, "quantity": self._rng.randint(1, 3),
                              "unit_price_cents": price})
        with self.engine.begin() as conn:
            conn.execute(carts.insert(), [{"id": cart, "status": "open", "created_at": now} for cart in ids])
            conn.execute(cart_items.insert(), lines)
        self._carts.extend(ids)

    def _refill(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            self._wanted.clear()
            while not self._stop.is_set() and len(self._carts) < self.low * 2:
                self._fill()


def checkout_request(supply: CartSupply) -> Send:
    """Checkouts, each of a fresh prepared cart."""

    def send(client: httpx.Client, rng: random.Random) -> httpx.Response:
        return client.post("/checkout", json={"cart_id": supply.take()})

    return send


class LoadAverage:
    """The machine's 1-minute load average, read from /proc/loadavg every `every` seconds while
    the block runs (other work may share the machine: the figures come with it)."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self.readings: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoadAverage:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.readings.append(read_load_average())

    def _run(self) -> None:
        while True:
            self.readings.append(read_load_average())
            if self._stop.wait(self.every):
                return


def read_load_average() -> float:
    with open("/proc/loadavg") as loadavg:
        return float(loadavg.read().split()[0])
