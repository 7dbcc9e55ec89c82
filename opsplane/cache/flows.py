"""Redis care that acts: the report over the inventory's caches (the `cache-report` job and
`opsplane cache report`), a flush recorded with who asked and how many keys it dropped (the
one flush `opsplane cache flush` and the runbooks' `flush-cache` action share), and warming a
cache through the services that fill it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsplane.cache import analysis, client
from opsplane.cache.models import CacheFacts
from opsplane.clock import Clock
from opsplane.config.models import Inventory
from opsplane.errors import OpsplaneError, SecretError, UsageError
from opsplane.events import service as events
from opsplane.reports.models import Report

if TYPE_CHECKING:
    from opsplane.reports.jobs import JobEnv
    from opsplane.store import Store

ADMIN_TOKEN_ENV = "SHOP_ADMIN_TOKEN"  # the secret_env a service's warm-up route is guarded by
WARM_PATH = "/admin/cache/warm"
_HTTP_TIMEOUT = 30.0


def read_all(inventory: Inventory, names: Sequence[str], environ: Mapping[str, str], *,
             sample_size: int) -> tuple[list[CacheFacts], dict[str, str]]:
    """Each named cache read, and the reason of each one that could not be."""
    read: list[CacheFacts] = []
    unreachable: dict[str, str] = {}
    for name in names:
        try:
            read.append(client.read(client.address(inventory, name, environ), sample_size=sample_size))
        except (client.CacheUnreachable, SecretError) as exc:
            unreachable[name] = str(exc)
    return read, unreachable


def cache_report(inventory: Inventory, environ: Mapping[str, str], name: str | None = None, *,
                 sample_size: int = 1000) -> Report:
    """The report over cache `name`, or every cache of the inventory."""
    read, unreachable = read_all(inventory, client.cache_names(inventory, name), environ,
                                 sample_size=sample_size)
    return analysis.report(read, unreachable)


def cache_report_job(env: JobEnv) -> Report | None:
    """The weekly `cache-report` job: every cache of the inventory; None when there is none."""
    if not env.inventory.caches:
        return None
    return cache_report(env.inventory, env.environ)


@dataclass(frozen=True)
class Flushed:
    cache: str
    address: str
    db: int
    keys: int


def flush(store: Store, inventory: Inventory, name: str, *, db: int = 0, actor: str, clock: Clock,
          environ: Mapping[str, str], reason: str | None = None) -> Flushed:
    """FLUSHDB on database `db` of cache `name`, recorded as `cache.flushed` with the actor and
    the keys dropped; an unreachable cache is recorded as a failed flush and raised."""
    client.cache_names(inventory, name)
    where = client.address(inventory, name, environ)
    try:
        keys = client.flushdb(where, db)
    except client.CacheUnreachable as exc:
        _record(store, "cache.flushed", actor, name, "failure", clock,
                {"cache": name, "db": db, "address": where.shown, "error": str(exc), "reason": reason})
        raise
    _record(store, "cache.flushed", actor, name, "success", clock,
            {"cache": name, "db": db, "address": where.shown, "keys": keys, "reason": reason})
    return Flushed(name, where.shown, db, keys)


def _record(store: Store, kind: str, actor: str, name: str, outcome: str, clock: Clock,
            details: dict[str, Any]) -> None:
    with store.session() as session:
        events.record(session, kind=kind, actor=actor, target=f"cache:{name}", outcome=outcome,
                      service=name, ts=clock.now(),
                      details={k: v for k, v in details.items() if v is not None})


# --- warming ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Warmer:
    """A service that fills the cache and has a warm-up route: where its running instances
    answer and the token that guards the route."""

    service: str
    urls: tuple[str, ...]
    token: str


def warmers(inventory: Inventory, name: str, environ: Mapping[str, str], running: Mapping[str, list[int]],
            service: str | None = None) -> list[Warmer]:
    """The services that depend on cache `name` and carry the admin token, with the ports of
    their running instances (`running`: service -> ports). Refused, saying why, when none can."""
    client.cache_names(inventory, name)
    candidates = [s for s, found in inventory.services.items()
                  if name in found.depends_on and (service is None or s == service)]
    if service is not None and service not in inventory.services:
        raise UsageError(f"no service {service!r} in the inventory")
    if not candidates:
        named = f" by the name {service!r}" if service else ""
        raise UsageError(f"no service{named} depends on cache {name!r}: nothing knows what to load into it")
    found: list[Warmer] = []
    why: list[str] = []
    for candidate in candidates:
        run = inventory.services[candidate].run
        if run is None or ADMIN_TOKEN_ENV not in run.secret_env:
            why.append(f"{candidate}: its run section gives it no {ADMIN_TOKEN_ENV}")
            continue
        ports = running.get(candidate, [])
        if not ports:
            why.append(f"{candidate}: no instance is running")
            continue
        token = run.secret_env[ADMIN_TOKEN_ENV].resolve(dict(environ))  # type: ignore[attr-defined]
        found.append(Warmer(candidate, tuple(f"http://127.0.0.1:{port}" for port in ports), token))
    if not found:
        raise UsageError(f"no service can warm cache {name!r}: " + "; ".join(why))
    return found


def warm(store: Store, name: str, found: Sequence[Warmer], *, actor: str, clock: Clock) -> dict[str, Any]:
    """Ask one running instance of each service to load its hot keys (`POST /admin/cache/warm`;
    the next instance when one does not answer), recorded as `cache.warmed`."""
    import httpx

    results: dict[str, Any] = {}
    problems: list[str] = []
    with httpx.Client(trust_env=False, timeout=_HTTP_TIMEOUT) as http:
        for warmer in found:
            for url in warmer.urls:
                try:
                    answer = http.post(url + WARM_PATH, headers={"Authorization": f"Bearer {warmer.token}"})
                except httpx.HTTPError as exc:
                    problems.append(f"{warmer.service} at {url}: {exc}")
                    continue
                if answer.status_code != 200:
                    problems.append(f"{warmer.service} at {url} answered HTTP {answer.status_code}: "
                                    f"{answer.text[:200]}")
                    continue
                results[warmer.service] = answer.json()
                break
    outcome = "success" if len(results) == len(found) else "failure"
    _record(store, "cache.warmed", actor, name, outcome, clock,
            {"cache": name, "keys": sum(int(r.get("keys", 0)) for r in results.values()),
             "services": sorted(results), "problems": problems or None})
    if not results:
        raise OpsplaneError(f"cache {name} was not warmed: " + "; ".join(problems))
    return {"cache": name, "warmed": results, "problems": problems}
