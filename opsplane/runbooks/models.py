"""Runbooks as code: what a runbook file may say, and the inventory's `runbooks:` setting.

A runbook is a YAML file of steps with ids. Each step has a kind (a check, a PromQL query, a
command, an opsplane action, a decision, a person's confirmation or a second person's approval,
a wait for a condition, a note) and says whether it is `safe`: whether it may run with nobody
watching (`--auto`). Values may name the runbook's parameters as `${name}`; they are filled in
when a run starts (`render`). Strict models, so a misspelt field is an error at load time.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from opsplane.config.types import Duration, Strict
from opsplane.incidents.models import OPENING, Severity

StepId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]
RunbookName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)]

# Where a step may lead besides another step: the run ends well, fails, or is aborted.
END, FAIL, ABORT, CONTINUE = "end", "fail", "abort", "continue"
RESERVED = (END, FAIL, ABORT, CONTINUE)
OUTCOMES = ("ok", "warned", "failed", "skipped", "yes", "no", "timed_out")
ACTIONS = ("restart", "scale", "rollback", "failover", "flush-cache", "warm-cache", "silence")
# What each action's target must be in the inventory.
ACTION_TARGETS = {"restart": "service", "scale": "service", "rollback": "service",
                  "failover": "database", "flush-cache": "cache", "warm-cache": "cache"}
PARAMETER = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")
# A rule's `runbook` that is a runbook's name rather than a link: no '/', ':', '#' or '.'.
NAMED = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class AutoRule(Strict):
    """When `serve` may run an alert's runbook with nobody watching (docs/runbooks.md, "The
    closed loop"): an alert of these severities about these services, whose rule names one of
    these runbooks."""

    severities: list[Severity] = Field(
        default_factory=lambda: list(OPENING), min_length=1,
        description="The alerts' severities (P0 to P3) whose runbooks may run unattended.")
    services: list[str] | Literal["all"] = Field(
        "all", description="The services (the alerts' `service` label) it covers, or `all`.")
    runbooks: list[RunbookName] | None = Field(
        None, description="The runbooks it lets run (the alert rule's `runbook` must be one of "
        "them); unset: whichever runbook the alert's rule names.")
    verify_within: Duration = Field(
        300.0, gt=0, description="After the run's steps, how long the incident's alerts have to "
        "resolve and the service's checks to pass before the incident is handed to a person.")


class RunbooksSettings(Strict):
    """The inventory's `runbooks:` section."""

    dir: str | None = Field(
        None, description="Directory of runbook files (*.yaml), relative to the inventory file; "
        "`opsplane config validate` checks them too. Unset: only the runbooks opsplane ships.")
    auto: list[AutoRule] = Field(
        default_factory=list, description="Which alerts' runbooks `serve` runs by itself when they open "
        "or join an incident (safe steps only), then verifies recovery and resolves the incident or "
        "hands it to a person; the first rule that covers an alert applies. Empty (the default): none.")


class Parameter(Strict):
    description: str = ""
    of: Literal["text", "service", "database", "cache", "component"] = Field(
        "text", description="What the value names; anything but text must be in the inventory.")
    default: str | None = Field(None, description="The value when the run is not given one; unset: required.")


class For(Strict):
    """What a runbook is for, so that an alert or a service can find it."""

    alerts: list[str] = Field(default_factory=list, description="Alert names (alertname) it answers.")
    services: list[str] = Field(default_factory=list, description="Components it is about.")


class StepBase(Strict):
    id: StepId
    title: str = Field("", description="What the step does, in a few words.")
    safe: bool = Field(False, description="May run with nobody watching (`--auto`): it changes nothing "
                       "or only what is safe to change unattended.")
    next: str | None = Field(None, description="The step after this one (a step id or `end`); default: "
                             "the next in the file.")


class CheckStep(StepBase):
    kind: Literal["check"]
    check: str | None = Field(None, description="An inventory check as COMPONENT/CHECK (catalog/http).")
    promql: str | None = Field(None, description="A PromQL condition: true when it returns a non-zero value.")
    if_failed: str = Field(CONTINUE, description="Where a failed check leads: continue, fail, abort, end "
                           "or a step id.")
    safe: bool = True  # a look changes nothing (docs/runbooks.md: safe unless it says otherwise)

    @model_validator(mode="after")
    def _one_condition(self) -> CheckStep:
        if (self.check is None) == (self.promql is None):
            raise ValueError("give exactly one of check and promql")
        return self


class QueryStep(StepBase):
    kind: Literal["query"]
    promql: str = Field(description="A PromQL expression whose figures the run shows and keeps.")
    warn_above: float | None = Field(None, description="Outcome warned when a figure is above this.")
    fail_above: float | None = Field(None, description="Outcome failed when a figure is above this.")
    if_failed: str = CONTINUE
    safe: bool = True


# What a `report` step may read: opsplane's own answers (the store, the host), by name.
READS = ("health.checks", "incidents.open", "alerts.firing", "backup.status", "backup.archive",
         "host.disk", "host.memory", "tls.expiry", "oncall.handoff", "log.errors")


class ReportStep(StepBase):
    kind: Literal["report"]
    read: Literal["health.checks", "incidents.open", "alerts.firing", "backup.status", "backup.archive",
                  "host.disk", "host.memory", "tls.expiry", "oncall.handoff", "log.errors"] = Field(
        description="The opsplane read whose answer the step shows and judges (docs/checklists.md).")
    warn_at: float | None = Field(None, description="host.disk, host.memory: percent used from which "
                                  "the outcome is warned (default 80 and 85); log.errors: error lines of "
                                  "one service from which it is warned (default 10).")
    fail_at: float | None = Field(None, description="host.disk, host.memory: percent used from which "
                                  "the outcome is failed (default 90 and 95); log.errors: error lines of "
                                  "one service from which it is failed (default: never).")
    window: Duration = Field(86400.0, description="log.errors: how far back error lines are counted.")
    path: str = Field("/", description="host.disk: a path on the file system looked at.")
    if_failed: str = CONTINUE
    safe: bool = True


class CommandStep(StepBase):
    kind: Literal["command"]
    argv: list[str] = Field(min_length=1, description="The program and its arguments; never a shell.")
    timeout: Duration = Field(60.0, description="Longest it may run; then it is killed and the step fails.")
    idempotent: bool = Field(False, description="Running it twice does no harm: after a crash in the "
                             "middle of it, it is run again without asking a person.")
    if_failed: str = FAIL


class ActionStep(StepBase):
    kind: Literal["action"]
    action: Literal["restart", "scale", "rollback", "failover", "flush-cache", "warm-cache", "silence"]
    target: str | None = Field(None, description="The service, database or cache acted on.")
    instances: int | None = Field(None, ge=1, le=100, description="scale: how many instances.")
    matchers: list[str] = Field(default_factory=list, description='silence: label matchers, such as '
                                'service="orders".')
    duration: Duration = Field(3600.0, description="silence: how long it lasts.")
    comment: str = Field("", description="silence: why (default: the runbook and run).")
    idempotent: bool = False
    if_failed: str = FAIL

    @model_validator(mode="after")
    def _arguments(self) -> ActionStep:
        if self.action == "silence":
            if not self.matchers:
                raise ValueError("a silence needs matchers")
        elif not self.target:
            raise ValueError(f"{self.action} needs a target")
        if self.action == "scale" and self.instances is None:
            raise ValueError("scale needs instances")
        if self.action == "flush-cache" and self.safe:
            raise ValueError("flush-cache always needs a person to type the cache's name: it cannot be safe")
        return self


class DecideStep(StepBase):
    kind: Literal["decide"]
    step: str = Field(description="The earlier step whose outcome decides.")
    when: dict[str, str] = Field(description="Outcome (ok, failed, skipped, yes, no, timed_out) -> the "
                                 "step to go to (or end, fail, abort).")
    otherwise: str | None = Field(None, description="Where any other outcome leads; unset: the run fails.")
    safe: bool = True

    @model_validator(mode="after")
    def _outcomes(self) -> DecideStep:
        unknown = sorted(set(self.when) - set(OUTCOMES))
        if unknown:
            raise ValueError(f"unknown outcome {unknown[0]!r}; expected one of {', '.join(OUTCOMES)}")
        return self


class ConfirmStep(StepBase):
    kind: Literal["confirm"]
    prompt: str = Field(description="The question a person answers yes or no.")
    if_no: str = Field(ABORT, description="Where a no leads: abort, fail, end, continue or a step id.")


class ApproveStep(StepBase):
    kind: Literal["approve"]
    role: Literal["responder", "operator", "admin"] = Field(
        "operator", description="The role the approver needs; the run's requester cannot approve.")
    prompt: str = ""


class WaitUntilStep(StepBase):
    kind: Literal["wait_until"]
    check: str | None = None
    promql: str | None = None
    timeout: Duration = Field(300.0, description="Give up after this long: the step's outcome is timed_out.")
    every: Duration = Field(10.0, description="Time between two looks.")
    if_failed: str = Field(FAIL, description="Where a timeout leads.")
    safe: bool = True

    @model_validator(mode="after")
    def _one_condition(self) -> WaitUntilStep:
        if (self.check is None) == (self.promql is None):
            raise ValueError("give exactly one of check and promql")
        return self


class NoteStep(StepBase):
    kind: Literal["note"]
    text: str
    safe: bool = True


Step = Annotated[
    CheckStep | QueryStep | ReportStep | CommandStep | ActionStep | DecideStep | ConfirmStep | ApproveStep
    | WaitUntilStep | NoteStep,
    Field(discriminator="kind"),
]
STEP_KINDS = ("check", "query", "report", "command", "action", "decide", "confirm", "approve", "wait_until",
              "note")
# Steps whose effect on the world is not known after a crash in the middle of them.
CHANGES = ("command", "action")


class Runbook(Strict):
    name: RunbookName
    title: str
    description: str = ""
    for_: For = Field(default_factory=For, alias="for")
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)

    def step(self, step_id: str) -> Any:
        """The step with id `step_id`; KeyError when there is none."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def following(self, step_id: str) -> str:
        """The step after `step_id` when it names none: the next in the file, or `end`."""
        ids = [s.id for s in self.steps]
        at = ids.index(step_id)
        return ids[at + 1] if at + 1 < len(ids) else END

    def successor(self, step: Any) -> str:
        return step.next or self.following(step.id)


def named_runbook(reference: str | None) -> str | None:
    """The runbook an alert rule's `runbook` names, or None when it is a link (a URL or a
    path such as runbooks/high-error-rate.md) or unset."""
    return reference if reference is not None and NAMED.match(reference) else None


def run_command(name: str, parameters: dict[str, str] | None = None) -> str:
    """How a person runs the runbook `name`: the command line a notification shows."""
    given = "".join(f" --param {key}={value}" for key, value in (parameters or {}).items())
    return f"opsplane runbook run {name}{given}"


def named_in(annotations: dict[str, str]) -> str | None:
    """The runbook an alert's annotations name: its `runbook` command line as `run_command`
    writes it (`opsplane runbook run NAME ...`), or a bare name; None for a link or nothing."""
    command = (annotations.get("runbook") or "").split()
    if command[:3] == ["opsplane", "runbook", "run"] and len(command) > 3:
        return named_runbook(command[3])
    return named_runbook(annotations.get("runbook_url") or annotations.get("runbook"))


def parameters_used(value: Any) -> set[str]:
    """Every `${name}` in `value` (strings, lists and mappings within)."""
    if isinstance(value, str):
        return set(PARAMETER.findall(value))
    if isinstance(value, list):
        return set().union(*(parameters_used(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(parameters_used(v) for v in value.values())) if value else set()
    return set()


def _fill(value: Any, params: dict[str, str]) -> Any:
    if isinstance(value, str):
        return PARAMETER.sub(lambda m: params.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_fill(v, params) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, params) for k, v in value.items()}
    return value


def render(runbook: Runbook, params: dict[str, str]) -> Runbook:
    """The runbook with `${name}` replaced by the run's parameters in every step."""
    data = runbook.model_dump(by_alias=True, exclude_none=True)
    data["steps"] = _fill(data["steps"], params)
    return Runbook.model_validate(data)


def resolve_parameters(runbook: Runbook, given: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The run's parameters (given ones, then defaults) and what is wrong with them: unknown
    names, required ones missing."""
    takes = ", ".join(runbook.parameters) or "none"
    problems = [f"unknown parameter {name!r}; {runbook.name} takes {takes}"
                for name in given if name not in runbook.parameters]
    values: dict[str, str] = {}
    for name, parameter in runbook.parameters.items():
        value = given.get(name, parameter.default)
        if value is None:
            problems.append(f"parameter {name!r} is required ({parameter.description or parameter.of}): "
                            f"--param {name}=VALUE")
        else:
            values[name] = value
    return values, problems
