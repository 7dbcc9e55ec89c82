"""The closed loop's decisions, as pure functions of values and the time (docs/runbooks.md, "The
closed loop"; decision 0029): which runbook an incident's alerts call for and whether the
policy lets it run unattended, whether the platform has recovered once it ran, and the words
of the resolution or of the hand-over to a person.

`serve`'s runbooks worker (`worker.py`) reads the store and the health checks' live state
into these values, and acts on what they decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from opsplane.config.models import Inventory
from opsplane.runbooks.models import AutoRule, Runbook, RunbooksSettings, resolve_parameters
from opsplane.timefmt import span

ACTOR = "system:runbook"
# Alert states in which the alert still says something is wrong.
ACTIVE_ALERT = ("pending", "firing")


@dataclass(frozen=True)
class Firing:
    """One alert that opened or joined an incident, as the store keeps it now."""

    name: str
    severity: str
    labels: Mapping[str, str]
    runbook: str | None  # its rule's `runbook` (the `runbook_url` annotation)
    state: str  # pending | firing | resolved | inactive | gone (no longer in the store)


@dataclass(frozen=True)
class Start:
    """Run `runbook` for the incident, unattended, with `parameters`; `alert` called for it."""

    runbook: str
    parameters: dict[str, str]
    alert: str
    verify_within: float


@dataclass(frozen=True)
class Skip:
    """Nothing to run for the incident, and why (for the log, never for a person's page)."""

    reason: str


def auto_problems(inventory: Inventory) -> list[tuple[tuple[str | int, ...], str]]:
    """What `runbooks.auto` names that the inventory does not have (located like the
    inventory's other cross-checks). Runbook names are checked where runbooks are loaded."""
    import difflib

    services = list(inventory.services)
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for index, rule in enumerate(inventory.runbooks.auto):
        if rule.services == "all":
            continue
        for at, name in enumerate(rule.services):
            if name not in services:
                close = difflib.get_close_matches(name, services, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append((("runbooks", "auto", index, "services", at),
                                 f"unknown service {name!r}; the inventory's: {', '.join(services) or 'none'}"
                                 f"{hint}"))
    return problems


def covering(settings: RunbooksSettings, *, severity: str, service: str, runbook: str) -> AutoRule | None:
    """The first `runbooks.auto` rule that lets `runbook` run for an alert of `severity` about
    `service`; None when none does."""
    for rule in settings.auto:
        if severity not in rule.severities:
            continue
        if rule.services != "all" and service not in rule.services:
            continue
        if rule.runbooks is not None and runbook not in rule.runbooks:
            continue
        return rule
    return None


def runbook_named(link: str | None, catalog: Mapping[str, Runbook]) -> Runbook | None:
    """The runbook an alert rule's `runbook` names: a bare runbook name such as `service-down`.
    A link (`runbooks/check-failing.md`, an address) names no runbook opsplane can run."""
    if not link:
        return None
    return catalog.get(link.strip())


def runs_unattended(runbook: Runbook) -> bool:
    """Whether a run with nobody watching gets anywhere: its first step is safe (otherwise
    the run would only wait for a person, who is paged anyway)."""
    return runbook.steps[0].safe


def plan(alerts: Sequence[Firing], *, service: str, settings: RunbooksSettings,
         catalog: Mapping[str, Runbook], inventory: Inventory) -> Start | Skip:
    """What to run for an incident about `service` whose alerts are `alerts` (oldest first):
    the runbook of the first alert whose rule names a runbook that the policy lets run
    unattended, its parameters taken from the alert's labels (a parameter `service` gets the
    alert's `service` label)."""
    if not settings.auto:
        return Skip("runbooks.auto is not set: no runbook runs by itself")
    reasons = []
    for alert in alerts:
        runbook = runbook_named(alert.runbook, catalog)
        if runbook is None:
            reasons.append(f"{alert.name} names no runbook opsplane has"
                           + (f" ({alert.runbook})" if alert.runbook else ""))
            continue
        where = alert.labels.get("service") or service
        rule = covering(settings, severity=alert.severity, service=where, runbook=runbook.name)
        if rule is None:
            reasons.append(f"runbooks.auto does not let {runbook.name} run for {alert.severity} "
                           f"alerts about {where}")
            continue
        if not runs_unattended(runbook):
            reasons.append(f"{runbook.name}'s first step needs a person")
            continue
        given = {name: alert.labels[name] for name in runbook.parameters if alert.labels.get(name)}
        if "service" in runbook.parameters and "service" not in given:
            given["service"] = where
        values, problems = resolve_parameters(runbook, given)
        problems += _component_problems(runbook, values, inventory)
        if problems:
            reasons.append(f"{runbook.name} cannot run for {alert.name}: {problems[0]}")
            continue
        return Start(runbook.name, values, alert.name, rule.verify_within)
    return Skip("; ".join(reasons) or "no alert of the incident names a runbook")


def _component_problems(runbook: Runbook, values: Mapping[str, str], inventory: Inventory) -> list[str]:
    from opsplane.runbooks.loader import component_problem

    found = []
    for name, parameter in runbook.parameters.items():
        problem = component_problem(parameter.of, values.get(name, ""), inventory)
        if problem:
            found.append(f"parameter {name}: {problem}")
    return found


# --- after the run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckSeen:
    """A check of the service as the health worker last saw it."""

    id: str
    ok: bool
    at: datetime | None  # when it last ran


@dataclass(frozen=True)
class Verified:
    """The incident's alerts have resolved and the service's checks pass: what was seen."""

    said: str


@dataclass(frozen=True)
class Watch:
    """Not yet: look again at `next_look`, at the latest at the deadline."""

    next_look: datetime


@dataclass(frozen=True)
class Escalate:
    """A person must take over, and why."""

    reason: str


Verdict = Verified | Watch | Escalate
FAILED_RUN = ("failed", "aborted")
WAITING_RUN = ("waiting", "awaiting_approval")


def verdict(*, run_state: str, run_reason: str, waiting_for: str, ended_at: datetime | None,
            alerts: Sequence[Firing], checks: Sequence[CheckSeen], since: datetime,
            verify_within: float, now: datetime, every: float) -> Verdict:
    """Whether the run brought the platform back. A run that stops at a step that needs a
    person, fails or is aborted hands over at once. A run that succeeded is watched until
    every alert of the incident has resolved and every check of the service has passed in a
    run begun after `since` (the run's start), or `verify_within` after the run ended."""
    if run_state in WAITING_RUN:
        return Escalate(f"the run stopped for a person: {waiting_for or 'a step that is not safe'}")
    if run_state in FAILED_RUN:
        return Escalate(f"the run {run_state}: {run_reason or 'no reason recorded'}")
    if run_state != "succeeded" or ended_at is None:
        return Watch(now + timedelta(seconds=every))
    still = [a.name for a in alerts if a.state in ACTIVE_ALERT]
    failing = [c.id for c in checks if not c.ok]
    stale = [c.id for c in checks if c.ok and (c.at is None or c.at < since)]
    if not still and not failing and not stale:
        names = sorted({a.name for a in alerts})
        checked = ", ".join(c.id for c in checks) or "none"
        return Verified(f"alerts resolved ({', '.join(names) or 'none'}); checks OK ({checked})")
    deadline = ended_at + timedelta(seconds=verify_within)
    if now >= deadline:
        wrong = [*(f"alert {name} still {_state_of(alerts, name)}" for name in dict.fromkeys(still)),
                 *(f"check {c} failing" for c in failing), *(f"check {c} not run since" for c in stale)]
        return Escalate(f"not recovered within {span(verify_within)} of the run's end: {'; '.join(wrong)}")
    return Watch(min(now + timedelta(seconds=every), deadline))


def _state_of(alerts: Sequence[Firing], name: str) -> str:
    return next(a.state for a in alerts if a.name == name)


# --- what people read ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepDone:
    """A step of the run as it ended (its last attempt)."""

    step: str
    kind: str
    outcome: str
    output: str


def tried(steps: Sequence[StepDone]) -> str:
    """The run's steps and outcomes in a line each: what was tried."""
    lines = []
    for step in steps:
        said = [line for line in step.output.strip().splitlines() if line.strip()]
        last = f": {said[-1][:200]}" if said and step.kind not in ("confirm", "approve") else ""
        lines.append(f"- {step.step} ({step.kind}): {step.outcome}{last}")
    return "\n".join(lines) or "- no step ran"


def resolution(*, runbook: str, run_id: int, service: str, steps: Sequence[StepDone],
               seen: Verified) -> tuple[str, str]:
    """The summary and the root cause of an incident the loop resolves."""
    summary = (f"Resolved by opsplane: runbook {runbook} (run {run_id}) ran unattended and recovery was "
               f"verified: {seen.said}.\nSteps:\n{tried(steps)}")
    root_cause = (f"{service} was down; runbook {runbook} (run {run_id}) brought it back. Why it went "
                  f"down is not known yet: look at `opsplane logs {service} --since 10m`.")
    return summary, root_cause


def hand_over(*, runbook: str, run_id: int, run_state: str, reason: str,
              steps: Sequence[StepDone]) -> str:
    """The note that hands the incident to a person: why the loop stopped and what it tried."""
    resume = (f" `opsplane runbook resume {run_id}` goes on with it." if run_state in WAITING_RUN else "")
    return (f"opsplane did not recover this by itself, a person must take over: runbook {runbook} "
            f"(run {run_id}) {reason}. Paging goes on until someone acknowledges.{resume}\n"
            f"Tried:\n{tried(steps)}")


__all__ = ["ACTOR", "CheckSeen", "Escalate", "Firing", "Skip", "Start", "StepDone", "Verdict", "Verified",
           "Watch", "covering", "hand_over", "plan", "resolution", "runbook_named", "runs_unattended",
           "tried", "verdict"]
