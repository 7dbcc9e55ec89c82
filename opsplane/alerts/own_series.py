"""opsplane's own series for the rules: what its checks and its runtime know, as samples.

`serve` adds them before each alerting cycle, as one scrape of the target "opsplane", so the
built-in rules (and a team's own) read them like any scraped series:

- `opsplane_check_failures{service, check, type, section, env, job}`: a check that found its
  component CRITICAL, valued by how many runs in a row did;
- `opsplane_service_not_running{service, criticality, env, job}`: a service opsplane's
  runtime runs and has given up on, valued by its failed instances.

Only what is wrong has a series: what recovers is left out of the next scrape, so its series
goes stale and its alert resolves, and healthy checks and running services cost nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from opsplane.alerts.pack import CHECK_FAILURES, NOT_RUNNING
from opsplane.health.targets import CheckTarget

Labels = tuple[tuple[str, str], ...]
JOB = "opsplane"


def check_failure_labels(target: CheckTarget, env: str) -> Labels:
    """The labels of `opsplane_check_failures` for one check (sorted, as the store keeps them)."""
    return tuple(sorted({
        "__name__": CHECK_FAILURES, "check": target.name, "env": env, "job": JOB,
        "section": target.section, "service": target.component, "type": target.type,
    }.items()))


def not_running_labels(service: str, criticality: str, env: str) -> Labels:
    """The labels of `opsplane_service_not_running` for one service (sorted)."""
    return tuple(sorted({
        "__name__": NOT_RUNNING, "criticality": criticality, "env": env, "job": JOB, "service": service,
    }.items()))


def own_samples(
    *,
    failures: Mapping[str, int],
    checks: Mapping[str, CheckTarget],
    not_running: Mapping[str, int],
    criticality: Mapping[str, str],
    env: str,
) -> list[tuple[Labels, float]]:
    """One scrape's samples: a series per failing check (of `checks`, by id) and per service
    the runtime gave up on; a service the inventory does not name counts as medium."""
    samples = [(check_failure_labels(checks[check_id], env), float(count))
               for check_id, count in failures.items() if check_id in checks]
    samples += [(not_running_labels(service, criticality.get(service, "medium"), env), float(failed))
                for service, failed in not_running.items()]
    return samples
