"""The SLO domain's series for the alert rules, as samples of opsplane's own scrape.

`serve`'s SLO worker computes them each minute from its ledgers (status.py) and the alerts
worker adds them to its scrape of "opsplane", so the burn-rate rules generated from each SLO
(rules.py) read them like any scraped series:

- `opsplane_slo_burn_rate{slo,service,window}` for 5m, 30m, 1h, 2h, 6h, 1d and 3d;
- `opsplane_slo_events{slo,service,window}`: events in that window (slices with events, for a
  time-sliced SLO), which a burn alert's long window must hold `min_events` of;
- `opsplane_slo_budget_remaining{slo,service}`: the share of the budget left (below 0 when
  overspent; absent while nothing can be judged);
- `opsplane_slo_objective{slo,service}`.

Unlike the backup series, every SLO has them all the time: a burn rate of 0 is news too."""

from __future__ import annotations

from collections.abc import Iterable

from opsplane.slo.status import SloStatus

Labels = tuple[tuple[str, str], ...]
JOB = "opsplane"
BURN_RATE = "opsplane_slo_burn_rate"
EVENTS = "opsplane_slo_events"
BUDGET_REMAINING = "opsplane_slo_budget_remaining"
OBJECTIVE = "opsplane_slo_objective"


def slo_samples(statuses: Iterable[SloStatus], *, env: str) -> list[tuple[Labels, float]]:
    """One scrape's samples for the SLOs' statuses."""
    samples: list[tuple[Labels, float]] = []
    for status in statuses:
        common = {"slo": status.name, "service": status.service, "env": env, "job": JOB}

        def labels(name: str, **extra: str) -> Labels:
            return tuple(sorted({"__name__": name, **common, **extra}.items()))  # noqa: B023

        for window, rate in status.burn_rates.items():
            samples.append((labels(BURN_RATE, window=window), rate))
            samples.append((labels(EVENTS, window=window), status.events[window]))
        if status.remaining is not None:
            samples.append((labels(BUDGET_REMAINING), status.remaining))
        samples.append((labels(OBJECTIVE), status.objective))
    return samples
