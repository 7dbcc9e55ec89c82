"""One scrape into the sample store, labelled as Prometheus labels it.

Every sample gets the target's labels: `job` and `service` (the component's name, also for
an instance of a release run beside it: `catalog` for catalog@v2.0), `instance` (host:port of
its metrics URL, so each instance of a component scraped per instance has series of its own)
and `env`. A label the target exposes under one of those names is kept as `exported_<name>`,
as Prometheus does with `honor_labels: false`, so a target cannot pass itself off as another;
a label with an empty value is dropped. Each scrape also writes the series Prometheus writes
for every target: `up` (1 when the page was read, 0 otherwise), `scrape_duration_seconds` and
`scrape_samples_scraped`. A failed scrape therefore turns every series of the target stale at
once (the store marks what was not reported) and leaves `up` at 0 for alert rules such as
`up == 0`. The store knows a target by its `key`: the component, or the instance.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opsplane.metrics.exposition import METRIC_NAME, parse_samples
from opsplane.metrics.promql import Labels
from opsplane.metrics.store import SampleStore, ScrapeIngest

if TYPE_CHECKING:
    from opsplane.metrics.scrape import ScrapeTarget


def target_labels(target: ScrapeTarget, env: str) -> dict[str, str]:
    """The labels every series of `target` carries."""
    parts = urlsplit(target.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    instance = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {"job": target.component, "service": target.component, "instance": instance, "env": env}


class SeriesCache:
    """The final labels of the series a target sent before, by the text of their line: most
    of a scrape is then lookups, not parsing and relabelling. Bounded: it starts over when a
    target churns through more series than `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._raw: dict[str, dict[str, Labels]] = {}
        self._final: dict[str, dict[Labels, Labels]] = {}

    def of(self, target: str) -> tuple[dict[str, Labels], dict[Labels, Labels]]:
        raw = self._raw.setdefault(target, {})
        final = self._final.setdefault(target, {})
        if len(raw) > self.limit or len(final) > self.limit:
            raw.clear()
            final.clear()
        return raw, final

    def forget(self, target: str) -> None:
        """Drop what is kept for `target` (an instance that stopped)."""
        self._raw.pop(target, None)
        self._final.pop(target, None)


def ingest(store: SampleStore, target: ScrapeTarget, env: str, text: str, *, at: float,
           duration: float, cache: SeriesCache | None = None) -> ScrapeIngest:
    """Parse `text` (raising ExpositionError before anything is stored) and store it as the
    scrape of `target` taken at `at`, with `up` 1."""
    own = target_labels(target, env)
    raw, final = cache.of(target.key) if cache is not None else (None, {})
    samples = []
    for labels, value in parse_samples(text, raw):
        relabelled = final.get(labels)
        if relabelled is None:
            relabelled = final[labels] = _relabel(labels, own)
        samples.append((relabelled, value))
    samples.extend(_scrape_series(own, up=1.0, duration=duration, scraped=len(samples)))
    return store.append_scrape(target.key, at, samples)


def ingest_failure(store: SampleStore, target: ScrapeTarget, env: str, *, at: float,
                   duration: float) -> ScrapeIngest:
    """Record a scrape that did not read a page: `up` 0, and everything else stale."""
    own = target_labels(target, env)
    return store.append_scrape(target.key, at,
                               list(_scrape_series(own, up=0.0, duration=duration, scraped=0)))


def _relabel(labels: Labels, own: dict[str, str]) -> Labels:
    merged = dict(own)
    for name, value in labels:
        if value:  # an empty label is no label, as in Prometheus
            merged[f"exported_{name}" if name in own else name] = value
    return tuple(sorted(merged.items()))


def _scrape_series(own: dict[str, str], *, up: float, duration: float,
                   scraped: int) -> Iterator[tuple[Labels, float]]:
    for name, value in (("up", up), ("scrape_duration_seconds", duration),
                        ("scrape_samples_scraped", float(scraped))):
        yield tuple(sorted({**own, METRIC_NAME: name}.items())), value
