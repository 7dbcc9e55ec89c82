"""opsplane's own Prometheus metrics, on a registry the control plane owns (no globals)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from opsplane.config.models import CHECK_TYPES
from opsplane.health.models import ProbeResult, State
from opsplane.health.targets import CheckTarget

_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_LATENESS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)
STATE_VALUE = {State.OK: 0, State.WARNING: 1, State.UNKNOWN: 2, State.CRITICAL: 3}


class ControlPlaneMetrics:
    """Counters and gauges of the scheduler and probes; label children are built once so the
    per-result cost stays a few attribute lookups."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry or CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)
        self.probes = Counter(
            "opsplane_probes", "Probe runs by check type and resulting state.",
            ["type", "state"], registry=self.registry)
        self.duration = Histogram(
            "opsplane_probe_duration_seconds", "Time a probe run took.", ["type"],
            buckets=_DURATION_BUCKETS, registry=self.registry)
        self.status = CheckStatus()
        self.registry.register(self.status)
        self.lateness = Histogram(
            "opsplane_scheduler_lateness_seconds", "How late a check started against its slot.",
            buckets=_LATENESS_BUCKETS, registry=self.registry)
        self.skipped = Counter(
            "opsplane_scheduler_skipped", "Slots skipped because the previous run was still going.",
            ["component", "check"], registry=self.registry)
        self.checks = Gauge("opsplane_checks", "Checks the scheduler runs.", registry=self.registry)
        self.state_changes = Counter(
            "opsplane_check_state_changes", "Check state changes recorded as events.",
            registry=self.registry)
        self.alert_cycle_failures = Counter(
            "opsplane_alert_cycle_failures", "Alerting cycles that failed (nothing of them was kept).",
            registry=self.registry)
        self.alert_cycle_last_success = Gauge(
            "opsplane_alert_cycle_last_success_timestamp_seconds",
            "When the last alerting cycle that succeeded ran (Unix time; 0 before the first).",
            registry=self.registry)
        self.alerts_received = Counter(
            "opsplane_alerts_received", "Alerts accepted by POST /api/v2/alerts.", registry=self.registry)
        self.alerts_refused = Counter(
            "opsplane_alerts_refused", "Alerts POST /api/v2/alerts refused: invalid (a label over its "
            "bound, ...) or over their sender's limit (sender_limit).", ["reason"], registry=self.registry)
        self.alerts_dropped = Counter(
            "opsplane_alerts_dropped", "Received alerts the store refused, dropped by the alerting cycle.",
            registry=self.registry)
        self._probe_children = {
            (kind, state): self.probes.labels(kind, state.value) for kind in CHECK_TYPES for state in State
        }
        self._duration_children = {kind: self.duration.labels(kind) for kind in CHECK_TYPES}

    def watch(self, targets: list[CheckTarget]) -> None:
        self.checks.set(len(targets))
        self.status.watch(targets)

    def observe(self, target: CheckTarget, result: ProbeResult, lateness: float) -> None:
        self._probe_children[(target.type, result.state)].inc()
        self._duration_children[target.type].observe(result.duration)
        self.status.states[target.id] = STATE_VALUE[result.state]
        self.lateness.observe(max(lateness, 0.0))

    def skip(self, target: CheckTarget) -> None:
        self.skipped.labels(target.component, target.name).inc()


class CheckStatus(Collector):
    """`opsplane_check_status`, one series per check that has a result, built when scraped.

    A labelled Gauge would keep an object with its own lock per check (about 850 bytes each,
    8 MB at 10,000 checks) for a value the control plane already knows; here a check costs
    one dict entry.
    """

    def __init__(self) -> None:
        self.states: dict[str, int] = {}
        self._targets: list[CheckTarget] = []

    def watch(self, targets: list[CheckTarget]) -> None:
        self._targets = targets
        known = {target.id for target in targets}
        self.states = {key: value for key, value in self.states.items() if key in known}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "opsplane_check_status",
            "Current state of each check: 0 OK, 1 WARNING, 2 UNKNOWN, 3 CRITICAL.",
            labels=["component", "check"])
        states = self.states
        for target in self._targets:
            value = states.get(target.id)
            if value is not None:
                family.add_metric((target.component, target.name), value)
        yield family
