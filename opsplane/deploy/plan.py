"""A deploy's plan: the steps of a strategy as plain data, and the steps that undo a deploy.

The plan is computed once, when the deploy is asked for, and stored with it: `--dry-run` prints
exactly what will run, and `serve` resumes the stored plan rather than a recomputed one. Every
step is idempotent (doing it twice leaves the world as doing it once), so a step cut off by a
crash is done again, and a step recorded as done is never repeated.

Step kinds:
- `precheck`: no open P0/P1 incident or firing P0/P1 alert on the service or what it depends on.
- `start`: start `instances` instances of the new release beside the current ones (no traffic).
- `smoke`: the service's smoke tests against each new instance.
- `shift`: give the new release `percent` % of the requests, and prove it on live answers.
- `analyse`: compare new and stable at the current share until a verdict (canary).
- `hold`: keep both for `seconds` while the rollback criteria are watched (blue-green).
- `replace`: run instance `instance` of the service's own group on the new release (rolling),
  its requests drained first when a proxy fronts it.
- `settle`: make the service's own group run the new release (each instance replaced while the
  new instances carry all requests), move requests back to it, stop the extra instances.
- `release`: record the new release as the service's current one.
- `postcheck`: the service's health checks pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Step = dict[str, Any]


@dataclass(frozen=True)
class PlanInput:
    strategy: str
    instances: int  # instances the service runs now
    proxied: bool
    canary_steps: Sequence[float] = (5.0, 25.0, 50.0, 100.0)
    initial_percent: float | None = None
    keep_previous: float = 300.0
    smoke_tests: int = 0


def build(spec: PlanInput) -> list[Step]:
    """The steps of a deploy with `spec`'s strategy."""
    steps: list[Step] = [{"kind": "precheck"}]
    if spec.strategy == "rolling":
        for index in range(spec.instances):
            steps.append({"kind": "replace", "instance": index})
    elif spec.strategy == "blue-green":
        steps += [{"kind": "start", "instances": spec.instances}]
        if spec.smoke_tests:
            steps.append({"kind": "smoke"})
        steps += [{"kind": "shift", "percent": 100.0},
                  {"kind": "hold", "seconds": spec.keep_previous},
                  {"kind": "settle"}]
    elif spec.strategy == "canary":
        steps.append({"kind": "start", "instances": 1})
        if spec.smoke_tests:
            steps.append({"kind": "smoke"})
        for percent in canary_weights(spec.canary_steps, spec.initial_percent):
            steps.append({"kind": "shift", "percent": percent})
            if percent < 100:
                steps.append({"kind": "analyse", "percent": percent})
        steps.append({"kind": "settle"})
    else:
        raise ValueError(f"unknown strategy {spec.strategy!r}")
    steps += [{"kind": "release"}, {"kind": "postcheck"}]
    return steps


def canary_weights(steps: Sequence[float], initial: float | None) -> list[float]:
    """The canary's shares: `initial` first when given, then the configured steps above it."""
    if initial is None:
        return list(steps)
    return [initial, *(p for p in steps if p > initial)] if initial < 100 else [100.0]


ROLLBACK: list[Step] = [{"kind": "restore"}]
"""Undoing a deploy is one idempotent step from any point: requests back to the service's own
group, each of its instances on the previous release (replaced where it is not), the extra
instances stopped, the previous release recorded."""


def describe(step: Step) -> str:
    """One line a person reads for `step`."""
    kind = step["kind"]
    if kind == "precheck":
        return "pre-checks: no open P0/P1 incident or firing P0/P1 alert on the service or its dependencies"
    if kind == "start":
        count = step["instances"]
        return f"start {count} instance{'s' if count != 1 else ''} of the new release (no requests yet)"
    if kind == "smoke":
        return "smoke tests against each new instance"
    if kind == "shift":
        return f"send {step['percent']:g} % of requests to the new release and prove it on live answers"
    if kind == "analyse":
        return f"analyse the new release against the stable one at {step['percent']:g} %"
    if kind == "hold":
        return (f"keep the previous release running {step['seconds']:g} s for an instant rollback, "
                "watching the rollback criteria")
    if kind == "replace":
        return f"replace instance {step['instance']} with the new release, gated on its health"
    if kind == "settle":
        return "move the service's own instances to the new release, then stop the extra ones"
    if kind == "release":
        return "record the new release as current"
    if kind == "postcheck":
        return "post-checks: the service's health checks pass"
    if kind == "restore":
        return "restore the previous release: requests back, instances replaced, extra ones stopped"
    return kind
