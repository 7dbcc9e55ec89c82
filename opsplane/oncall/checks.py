"""Load-time cross-checks of the `oncall:` section: every name it uses must be defined.

Only what the inventory itself says is checked. The built-in policies name `layer:primary`,
`layer:secondary` and the manual's roles; where an inventory leaves those out they resolve to
nobody at escalation time and say so, rather than making a short inventory invalid.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from opsplane.oncall.models import EscalationPolicy, OncallSettings

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


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    return f"unknown {what} {name!r}" + _hint(name, known)


def _hint(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
