"""Load-time cross-checks of the `oncall:` section: every name it uses must be defined.

Only what the inventory itself says is checked. The built-in policies name `layer:primary`,
`layer:secondary` and the manual's roles; where an inventory leaves those out they resolve to
nobody at escalation time and say so, rather than making a short inventory invalid.

`oncall_warnings` finds what is valid but will not do what it seems to: PagerDuty pages after a
policy's first one (docs/decisions/0010-paging-through-the-outbox.md).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from opsplane.oncall.models import DEFAULT_SEVERITIES, ContactKind, EscalationPolicy, OncallSettings

Problem = tuple[tuple[str | int, ...], str]


def oncall_problems(settings: OncallSettings, *, channels: Mapping[str, object]) -> list[Problem]:
    """Unknown people, schedules, layers, roles, channels and policies, with their paths in the
    file; `channels` are the names defined under `channels.named`."""
    problems: list[Problem] = []
    people = settings.people
    for role, person in settings.roles.items():
        if person not in people:
            problems.append((("oncall", "roles", role), _unknown("person", person, people)))
    for name, schedule in settings.schedules.items():
        for layer, spec in schedule.layers.items():
            for i, person in enumerate(spec.rotation):
                if person not in people:
                    problems.append((("oncall", "schedules", name, "layers", layer, "rotation", i),
                                     _unknown("person", person, people)))
        for i, override in enumerate(schedule.overrides):
            at = ("oncall", "schedules", name, "overrides", i)
            if override.layer not in schedule.layers:
                problems.append(((*at, "layer"), _unknown("layer", override.layer, schedule.layers)))
            if override.person not in people:
                problems.append(((*at, "person"), _unknown("person", override.person, people)))
    for name, policy in settings.policies.items():
        problems.extend(_policy(settings, name, policy, channels))
    for kind, channel in settings.contact_channels.items():
        if channel not in channels:
            problems.append((("oncall", "contact_channels", str(kind)),
                             _unknown("channel", channel, channels) + "; define it under channels.named"))
    known = settings.all_policies()
    for severity, policy_name in settings.severities.items():
        if policy_name not in known:
            problems.append((("oncall", "severities", severity), _unknown("policy", policy_name, known)))
    return problems


def _policy(
    settings: OncallSettings, name: str, policy: EscalationPolicy, channels: Mapping[str, object]
) -> Iterable[Problem]:
    at = ("oncall", "policies", name)
    schedules = settings.schedules
    if policy.schedule is not None and policy.schedule not in schedules:
        yield (*at, "schedule"), _unknown("schedule", policy.schedule, schedules)
        return
    own = policy.schedule or next(iter(schedules), None)
    for s, step in enumerate(policy.steps):
        for t, target in enumerate(step.notify):
            kind, _, rest = target.partition(":")
            path = (*at, "steps", s, "notify", t)
            if kind == "layer":
                if own is None:
                    yield path, f"{target!r} needs an on-call schedule; define one under oncall.schedules"
                elif rest not in schedules[own].layers:
                    yield path, f"schedule {own!r} has no layer {rest!r}" + _hint(rest, schedules[own].layers)
            elif kind == "schedule":
                schedule, _, layer = rest.partition("/")
                if schedule not in schedules:
                    yield path, _unknown("schedule", schedule, schedules)
                elif layer not in schedules[schedule].layers:
                    yield path, f"schedule {schedule!r} has no layer {layer!r}" + _hint(
                        layer, schedules[schedule].layers)
            elif kind == "person" and rest not in settings.people:
                yield path, _unknown("person", rest, settings.people)
            elif kind == "role" and rest not in settings.roles:
                yield path, _unknown("role", rest, settings.roles) + "; assign it under oncall.roles"
            elif kind == "channel" and rest not in channels:
                yield path, _unknown("channel", rest, channels) + "; define it under channels.named"


def oncall_warnings(settings: OncallSettings, *, channels: Mapping[str, object]) -> list[Problem]:
    """One warning per escalation policy in use that pages through a PagerDuty channel after
    its first step that does: an incident's PagerDuty events share one dedup_key, so those
    later pages join the PagerDuty incident the first one opened and page nobody; whom
    PagerDuty pages next is its own escalation policy's choice. Located at the first such
    step of a policy the inventory defines, or at `oncall` for a built-in one."""
    pagerduty = {name for name, spec in channels.items() if getattr(spec, "type", None) == "pagerduty"}
    if not pagerduty:
        return []
    by_kind = settings.channel_for(ContactKind.PAGERDUTY, channels) in pagerduty
    users: dict[str, list[str]] = {}
    for severity in DEFAULT_SEVERITIES:
        users.setdefault(settings.policy_name_for(severity), []).append(severity)
    problems: list[Problem] = []
    for name, policy in settings.all_policies().items():
        defined = name in settings.policies
        if defined or name in users:
            found = _late_pagerduty(policy, pagerduty, by_kind)
            if found is not None:
                at, message = found
                if not defined:
                    used = ", ".join(users[name])
                    message = (f"the built-in policy {name!r} (used by {used}): {message}; "
                               f"define oncall.policies.{name} to change it")
                problems.append((("oncall", "policies", name, *at), message))
    return problems


def _late_pagerduty(policy: EscalationPolicy, pagerduty: set[str],
                    by_kind: bool) -> tuple[tuple[str | int, ...], str] | None:
    """Where `policy` first pages through PagerDuty after its first step that does, and what
    to say about every such step; None when it does not."""
    first: int | None = None
    later: list[tuple[int, tuple[str | int, ...], bool]] = []  # step, where, only by PagerDuty
    for s, step in enumerate(policy.steps):
        people = any(not target.startswith("channel:") for target in step.notify)
        where: list[tuple[str | int, ...]] = []
        if by_kind and people and ContactKind.PAGERDUTY in step.via:
            where.append(("steps", s, "via", step.via.index(ContactKind.PAGERDUTY)))
        where += [("steps", s, "notify", t) for t, target in enumerate(step.notify)
                  if target.startswith("channel:") and target.partition(":")[2] in pagerduty]
        if not where:
            continue
        if first is None:
            first = s
        else:
            later.append((s, where[0], people and list(step.via) == [ContactKind.PAGERDUTY]))
    if first is None or not (later or policy.repeat):
        return None
    steps = _steps([s + 1 for s, _, _ in later], repeats=bool(policy.repeat))
    message = (f"PagerDuty in {steps} pages no one: an incident's PagerDuty events share one "
               f"dedup_key, so they join the PagerDuty incident step {first + 1} opened, and "
               "PagerDuty's own escalation policy decides whom it pages next")
    alone = [s + 1 for s, _, only in later if only]
    if alone:
        message += (f"; {_steps(alone)} {'reaches its' if len(alone) == 1 else 'reach their'} "
                    "people by nothing else: add sms, phone, slack or email to page them from opsplane")
    return (later[0][1] if later else ("repeat",)), message


def _steps(numbers: list[int], *, repeats: bool = False) -> str:
    """'step 2', 'steps 2 and 3', 'steps 2, 3 and the repeats', 'the repeats'."""
    words = [str(n) for n in numbers] + (["the repeats"] if repeats else [])
    head = "" if not numbers else "step " if len(numbers) == 1 else "steps "
    return head + (words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" and {words[-1]}")


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    return f"unknown {what} {name!r}" + _hint(name, known)


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
