"""The sentences of the runbook domain's events: a run started, each step's outcome, a wait for
a person, an approval, the end; a checklist's run with its counts; and the closed loop's verdict
on a run for an incident."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from opsplane.events.words import text

_OUTCOME = {"ok": "ok", "warned": "warned",
            "failed": "failed", "skipped": "skipped", "yes": "answered yes", "no": "answered no",
            "timed_out": "timed out", "not_yet": "not yet true", "not_run": "did not happen"}


def _said(d: Mapping[str, Any], key: str, default: str = "?") -> str:
    return text(d.get(key)) or default


def _runbook(kind: str, target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    run = f"Runbook {_said(d, 'runbook')} run {_said(d, 'run')}"
    if kind == "runbook.started":
        params = d.get("parameters")
        given = f" with {text(params)}" if isinstance(params, Mapping) and params else ""
        return f"{run} started ({_said(d, 'mode')}){given}: {_said(d, 'title')}"
    if kind == "runbook.step":
        by = d.get("approved_by") or d.get("confirmed_by")
        who = f" by {text(by)}" if by and outcome in ("yes", "no", "skipped", "not_run") else ""
        raw = d.get("output")
        output = (raw if isinstance(raw, str) else text(raw) or "").strip().splitlines()
        last = f": {output[-1][:160]}" if output and d.get("kind") not in ("confirm", "approve") else ""
        return (f"{run}: step {_said(d, 'step')} ({_said(d, 'kind')}) "
                f"{_OUTCOME.get(outcome, outcome)}{who}{last}")
    if kind == "runbook.waiting":
        return f"{run} waits at step {_said(d, 'step')} for {_said(d, 'why')}"
    if kind == "runbook.approved":
        return f"{run}: step {_said(d, 'step')} approved (needs {_said(d, 'role')})"
    if kind == "runbook.finished":
        state = _said(d, "state")
        reason = d.get("reason")
        return f"{run} {state}" + (f": {text(reason)}" if reason and state != "succeeded" else "")
    if kind == "runbook.recovered":
        return f"{run}: recovery verified: {_said(d, 'seen')}"
    if kind == "runbook.escalated":
        return f"{run} did not bring it back, handed to a person: {_said(d, 'reason')}"
    return f"{kind} {target}: {outcome}"


RUNBOOK_KINDS = ("runbook.started", "runbook.step", "runbook.waiting", "runbook.approved", "runbook.finished",
                 "runbook.recovered", "runbook.escalated")


def _checklist(target: str, service: str | None, outcome: str, d: Mapping[str, Any]) -> str:
    counts = f"{_said(d, 'ok', '0')} ok, {_said(d, 'warned', '0')} warned, {_said(d, 'failed', '0')} failed"
    items = d.get("items")
    named = ", ".join(f"{text(i.get('step'))} {text(i.get('outcome'))}" for i in items
                      if isinstance(i, Mapping)) if isinstance(items, list) else ""
    return f"Checklist {_said(d, 'checklist')} ran ({_said(d, 'trigger')}): {counts}" + (
        f": {named}" if named else "")


def describers() -> dict[str, Any]:
    """Each runbook event kind's sentence writer (target, service, outcome, details)."""
    return {**{kind: functools.partial(_runbook, kind) for kind in RUNBOOK_KINDS},
            "checklist.ran": _checklist}
