"""What `serve` knows right now, as the dashboard, the status page and the API read it.

The control plane's workers (docs/ARCHITECTURE.md, "Workers") keep the latest check results,
the probe history, the scrape states and the runtime's word on each service in memory; the
pages and routes read them through these protocols, never through the control plane itself,
so that nothing under `opsplane/web` or a domain's views imports `opsplane.server`. The
composition (`opsplane.server.ControlPlane`) implements `LiveState`; each domain's worker
implements the part it keeps (`CheckReads` the health worker, `ScrapeReads` the scraper,
`RuntimeReads` the runtime follower, `AlertReads` the alerts worker). How each worker itself
is doing (`WorkerHealth`) is read here too, for `/health` and `/metrics`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from opsplane.alerts.flows import Alerting
    from opsplane.alerts.intake import ReceivedAlert
    from opsplane.clock import Clock
    from opsplane.config.models import Inventory
    from opsplane.health.history import ProbeHistory
    from opsplane.health.models import ProbeResult
    from opsplane.health.targets import CheckTarget
    from opsplane.metrics.promql import Labels
    from opsplane.metrics.remote import PrometheusClient
    from opsplane.metrics.scrape import LockedSource, ScrapeStatus, ScrapeTarget
    from opsplane.metrics.store import SampleStore
    from opsplane.store import Store
    from opsplane.telemetry import ControlPlaneMetrics


# A worker this far behind its schedule (or three of its periods, when longer) is stuck.
STUCK_AFTER = 60.0


class WorkerState(StrEnum):
    STARTING = "starting"  # built, not started yet
    RUNNING = "running"
    STOPPED = "stopped"  # stopped by `serve`
    CRASHED = "crashed"  # its loop raised
    ENDED = "ended"  # its loop returned while serve still runs


@dataclass(frozen=True)
class WorkerHealth:
    """How one worker is doing, as `/health` and `/metrics` report it."""

    name: str
    state: WorkerState
    singleton: bool
    last_run: datetime | None = None
    lag: float = 0.0  # seconds behind its schedule; 0 when on time or not scheduled
    errors: int = 0
    last_error: str | None = None
    # why it does not do its work now (alerting cycles that keep failing), while it lasts
    failing: str | None = None
    stuck_after: float = STUCK_AFTER

    @property
    def problem(self) -> str | None:
        """Why this worker makes the control plane degraded; None while it is fine."""
        if self.state in (WorkerState.CRASHED, WorkerState.ENDED):
            said = f": {self.last_error}" if self.last_error and self.state is WorkerState.CRASHED else ""
            return f"worker {self.name} {self.state.value}{said}"
        if self.failing:
            return self.failing
        if self.lag > self.stuck_after:
            return f"worker {self.name} is {self.lag:.0f} s behind its schedule"
        return None


class CheckResults(Protocol):
    """The checks of one environment and what their last runs found."""

    @property
    def targets(self) -> Sequence[CheckTarget]: ...
    @property
    def latest(self) -> Mapping[str, ProbeResult]: ...
    @property
    def checked_at(self) -> Mapping[str, datetime]: ...
    @property
    def history(self) -> ProbeHistory: ...


class CheckReads(CheckResults, Protocol):
    """The checks' results, and which checks fail now, as the health worker keeps them."""

    @property
    def failures(self) -> Mapping[str, int]:
        """Check id -> CRITICAL results in a row, for the checks failing now."""
        ...

    @property
    def tallies(self) -> Mapping[str, tuple[int, int]]:
        """Component -> (OK results, all results) of its checks since serve started."""
        ...

    def since(self, check_id: str) -> datetime | None:
        """Since when the check has been in its recorded state (None before its first)."""
        ...


class ScrapeReads(Protocol):
    """What is scraped and how each scrape went (`metrics.scrape.MetricsScraper`)."""

    @property
    def targets(self) -> Sequence[ScrapeTarget]: ...
    @property
    def components(self) -> set[str]: ...
    def status(self, component: str) -> ScrapeStatus | None: ...
    def locked_source(self) -> LockedSource | None: ...


class RuntimeReads(Protocol):
    """What opsplane's runtime says of the services it runs."""

    def down_for_good(self) -> dict[str, int]:
        """The services the runtime will not start again, with their instance counts."""
        ...


class AlertReads(Protocol):
    """Whether the rules are evaluated, and the door for alerts received through the API."""

    @property
    def alerting(self) -> Alerting | None: ...
    @property
    def prometheus(self) -> PrometheusClient | None: ...
    def receive_alerts(self, alerts: Sequence[ReceivedAlert]) -> list[ReceivedAlert] | None: ...


class Samples(Protocol):
    """The sample store the rules read: the scraped samples, and opsplane's own series."""

    @property
    def store(self) -> SampleStore | None:
        """None while nothing is scraped and the rules have not asked for it."""
        ...

    def sample_store(self, *, series_limit: int) -> SampleStore:
        """The store, made now (with at least `series_limit` series per target) when nothing
        is scraped."""
        ...

    def locked_source(self) -> LockedSource | None: ...
    def append_scrape(self, target: str, at: float, samples: Sequence[tuple[Labels, float]]) -> None:
        """Add samples as one scrape of `target`, under the store's lock."""
        ...


class Looks(Protocol):
    """A domain that can look at some services now, outside its schedule (their checks, their
    scrapes), when the runtime says their processes changed."""

    def look_now(self, services: set[str]) -> list[asyncio.Future[Any]]:
        """Start looking; the runs to wait for."""
        ...


class RuleCycles(Protocol):
    """The alerting cycle, as the runtime follower hurries it."""

    def hurry(self, waiting_for: Sequence[asyncio.Future[Any]]) -> None:
        """Run a cycle as soon as `waiting_for` are done (a little while at most), without the
        pause kept between cycles started by changed inputs."""
        ...


class BackupReads(Protocol):
    """What the backup worker knows of the backup policies, for the rules: the series of what
    falls short (opsplane/backup/series.py), as its last round found them."""

    samples: list[tuple[Labels, float]]
    # policy -> repository -> the moment a restore reaches through the WAL archive
    archived: dict[str, dict[str, datetime]]


class ReportReads(Protocol):
    """What the reports worker knows of the jobs' last reports, for the rules: the series of
    their findings and failures (opsplane/reports/worker.py)."""

    samples: list[tuple[Labels, float]]


class SloReads(Protocol):
    """What the SLO worker knows of the SLOs, for the rules and the API: the series of their
    burn rates and budgets (opsplane/slo/series.py) and each SLO's status, as its last minute
    found them."""

    samples: list[tuple[Labels, float]]
    statuses: dict[str, Any]  # SLO name -> opsplane.slo.status.SloStatus


class LiveState(CheckResults, Protocol):
    """Everything the pages and routes of `serve` read: the world it was given (inventory,
    store, clock, environment) and what its workers know now."""

    @property
    def inventory(self) -> Inventory: ...
    @property
    def store(self) -> Store: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def env(self) -> str: ...
    @property
    def metrics(self) -> ControlPlaneMetrics: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def scraper(self) -> ScrapeReads: ...
    @property
    def alerting(self) -> Alerting | None: ...
    @property
    def prometheus(self) -> PrometheusClient | None: ...

    def since(self, check_id: str) -> datetime | None: ...
    def receive_alerts(self, alerts: Sequence[ReceivedAlert]) -> list[ReceivedAlert] | None: ...
    def wake_worker(self, name: str) -> bool:
        """Wake the worker `name` (from the event loop's thread); False when there is none."""
        ...

    def own_health(self) -> tuple[Literal["ok", "starting", "degraded"], str | None, list[WorkerHealth]]:
        """The control plane's state, why it is degraded, and every worker's health."""
        ...
