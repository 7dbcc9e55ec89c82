"""The post-mortem draft: the manual's required sections, filled with what the record knows.

Timeline of events, root cause analysis, impact assessment (duration, affected services,
times to detect, acknowledge and resolve against the severity's targets), what went well,
what went wrong, and action items with owners and due dates. What only people know (the root
cause, the lessons) is left as prompts under each heading; the facts are not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from opsplane import timefmt
from opsplane.incidents.models import ActionItem, IncidentView, SeverityPolicy, TimelineEntry, ref
from opsplane.incidents.report import time_to_acknowledge, time_to_detect, time_to_resolve

SECTIONS = ("Timeline", "Root cause analysis", "Impact assessment", "What went well",
            "What went wrong", "Action items")


@dataclass(frozen=True)
class PostmortemFacts:
    """Everything the draft is written from."""

    incident: IncidentView
    policy: SeverityPolicy
    participants: Sequence[str]
    alerts: Sequence[dict[str, Any]]
    updates: Sequence[dict[str, Any]]
    timeline: Sequence[TimelineEntry]
    action_items: Sequence[ActionItem]
    root_cause: str
    now: datetime


def span(seconds: float | None) -> str:
    """A duration as people write it (45s, 12m 30s, 2h 05m, 3d 4h), or "unknown"."""
    return "unknown" if seconds is None else timefmt.span(seconds)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "-"


def affected_services(facts: PostmortemFacts) -> list[str]:
    """The incident's service, then those whose alerts were muted because of it (they
    depend on it) as the notifications in its timeline name them."""
    found = [facts.incident.service]
    for entry in facts.timeline:
        for explained in entry.details.get("explains", []) if entry.kind == "alert.notified" else []:
            name = (explained.get("alert") or {}).get("labels", {}).get("service")
            if name and name not in found:
                found.append(name)
    return found


def _judgements(facts: PostmortemFacts) -> tuple[list[str], list[str]]:
    """Facts for 'went well' and 'went wrong': targets met or missed, updates on time."""
    well: list[str] = []
    wrong: list[str] = []
    incident, policy = facts.incident, facts.policy
    for what, taken, target in (("Acknowledged", time_to_acknowledge(incident), policy.response_time),
                                ("Resolved", time_to_resolve(incident), policy.resolution_target)):
        if taken is None:
            continue
        line = f"{what} in {span(taken)} (target {span(target)})."
        (well if taken <= target else wrong).append(line)
    reminders = sum(1 for e in facts.timeline if e.kind == "incident.update_due")
    if reminders:
        wrong.append(f"Status updates were overdue {reminders} time{'s' if reminders != 1 else ''}.")
    elif policy.update_cadence and facts.updates:
        well.append(f"Status updates kept to the {span(policy.update_cadence)} cadence.")
    return well, wrong


def _changes(facts: PostmortemFacts) -> list[str]:
    """The deploys the timeline holds, each with how it began and how it ended: a change shortly
    before an incident is the first suspect."""
    deploys: dict[Any, list[Any]] = {}
    for entry in facts.timeline:
        if entry.kind.startswith("deploy.") and entry.kind not in ("deploy.step", "deploy.verdict"):
            deploys.setdefault(entry.details.get("deploy"), []).append(entry)
    if not deploys:
        return ["No deploys in the timeline's window."]
    return [f"- Deploy {number}: " + "; then ".join(f"{e.at.strftime('%H:%M:%S')} {_cell(e.what)}"
                                                   for e in entries)
            for number, entries in deploys.items()]


def _runbooks(facts: PostmortemFacts) -> list[str]:
    """Each runbook run the timeline holds: its steps in order with their outcomes, and how it
    ended (what was tried, by the record rather than by memory)."""
    runs: dict[Any, dict[str, Any]] = {}
    for entry in facts.timeline:
        if not entry.kind.startswith("runbook."):
            continue
        run = runs.setdefault(entry.details.get("run"), {"name": entry.details.get("runbook"), "steps": [],
                                                          "by": entry.actor, "end": "not finished"})
        if entry.kind == "runbook.step":
            outcome = str(entry.details.get("outcome", "done")).replace("_", " ")
            run["steps"].append(f"{entry.details.get('step')} {outcome}")
        elif entry.kind == "runbook.finished":
            run["end"] = str(entry.details.get("state", "ended"))
            if entry.details.get("reason") and run["end"] != "succeeded":
                run["end"] += f" ({entry.details['reason']})"
    if not runs:
        return ["No runbook was run for this incident."]
    return [f"- Run {number} of {run['name']} by {_cell(run['by'])}: "
            + ("; ".join(_cell(s) for s in run["steps"]) or "no step done") + f"; {_cell(run['end'])}"
            for number, run in runs.items()]


def render(facts: PostmortemFacts) -> str:
    """The post-mortem draft as Markdown."""
    incident, policy = facts.incident, facts.policy
    duration = ((incident.resolved_at or facts.now) - incident.started_at).total_seconds()
    due = (incident.resolved_at + timedelta(seconds=policy.postmortem_within)
           if incident.resolved_at and policy.postmortem_within else None)
    lines = [
        f"# Post-mortem: {ref(incident.id)} {incident.title}",
        "",
        f"- **Severity**: {incident.severity}",
        f"- **Service**: {incident.service}",
        f"- **Status**: {incident.status.value}",
        f"- **Commander**: {incident.commander or '-'}",
        f"- **Participants**: {', '.join(facts.participants) or '-'}",
        f"- **Started**: {_when(incident.started_at)}",
        f"- **Resolved**: {_when(incident.resolved_at)}",
        "- **Post-mortem**: " + (f"required by {_when(due)}" if due else
                                 "required" if policy.postmortem_within else "optional"),
        "",
    ]
    if facts.updates:
        lines += ["## Summary", "", facts.updates[-1]["summary"], ""]
    lines += ["## Timeline", "", "| Time (UTC) | Event | By |", "|---|---|---|"]
    lines += [f"| {e.at.strftime('%H:%M:%S')} | {_cell(e.what)} | {_cell(e.actor)} |"
              for e in facts.timeline] or ["| - | No events recorded | - |"]
    lines += ["", "## Changes", "", *_changes(facts), ""]
    lines += ["## Runbooks run", "", *_runbooks(facts), ""]
    lines += ["## Root cause analysis", "",
              facts.root_cause or "_What caused it, and why was that possible? (Ask why until the "
              "answer is a process or a design, not a person.)_", ""]
    lines += [
        "## Impact assessment", "",
        f"- **Duration**: {span(duration)}" + ("" if incident.resolved_at else " so far (not resolved)"),
        f"- **Affected services**: {', '.join(affected_services(facts))}",
        f"- **Time to detect**: {span(time_to_detect(incident))}",
        f"- **Time to acknowledge**: {span(time_to_acknowledge(incident))} "
        f"(target {span(policy.response_time)})",
        f"- **Time to resolve**: {span(time_to_resolve(incident))} "
        f"(target {span(policy.resolution_target)})",
    ]
    if facts.alerts:
        names = ", ".join(f"{a['alertname']} ({a['severity']})" for a in facts.alerts)
        lines.append(f"- **Alerts**: {names}")
    lines += ["- **Users affected**: _who could not do what, and how many_", ""]
    well, wrong = _judgements(facts)
    lines += ["## What went well", "", *[f"- {w}" for w in well], "- _..._", ""]
    lines += ["## What went wrong", "", *[f"- {w}" for w in wrong], "- _..._", ""]
    lines += ["## Action items", "", "| # | Action | Owner | Due | Done |", "|---|---|---|---|---|"]
    lines += [f"| {a.id} | {_cell(a.title)} | {_cell(a.owner)} | "
              f"{a.due.isoformat() if a.due else '-'} | "
              f"{a.done_at.date().isoformat() if a.done_at else 'open'} |"
              for a in facts.action_items] or ["| - | _Add with `opsplane incident action`_ | - | - | - |"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
