"""`opsplane backup run|list|status|verify` (and, beside them, `opsplane restore` and
`opsplane drill`): the backup policy of the inventory, run and proven from the command line.

A command that changes something needs the operator role (docs/decisions/0012); reads need
nothing and never create the store (0013). Exit codes: 0 done and sound, 1 done with a warning
(a repository check found problems, a policy falls short of 3-2-1 or its RPO), 2 failed, 3
refused (nothing changed)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, load_inventory, open_store, out, print_json
from opsplane.clock import SystemClock
from opsplane.drivers.backup.base import Progress
from opsplane.units import format_value

app = typer.Typer(no_args_is_help=True, help="Backups: run, list, verify, and their state against "
                  "RPO and 3-2-1.")


def _engine(inventory: Any, base: Path, name: str) -> Any:
    from opsplane.backup.factory import open_engine
    from opsplane.backup.policy import apply

    return open_engine(inventory, apply(inventory, name), environ=os.environ, base_dir=base)


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress]:
    """A Rich progress bar that follows the engine's phases and fractions, on a terminal."""
    if not enabled:
        yield lambda phase, fraction: None
        return
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<18}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=out, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def show(phase: str, fraction: float | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=None if fraction is None else 1.0)
            if fraction is not None:
                bar.update(tasks[phase], total=1.0, completed=fraction)

        yield show


@app.command("run")
def run(
    ctx: typer.Context,
    policy: str = typer.Argument(..., metavar="POLICY",
                                 help="The backup policy (usually the component's name)."),
    kind: str = typer.Option("full", "--kind", help="full, diff or incr (pgbackrest); others take full."),
    check: bool = typer.Option(True, "--check/--no-check", help="Check each repository after the backup "
                               "(pgBackRest verify, restic check)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Take one backup of POLICY now, into each of its repositories.

    Exit 0 when it is good and its repositories are sound, 1 when a repository check found
    problems, 2 when the backup failed, 3 when refused."""
    from opsplane.backup.flows import BackupRuns
    from opsplane.errors import UsageError

    if kind not in ("full", "diff", "incr"):
        raise UsageError(f"unknown kind {kind!r}; use full, diff or incr")
    inventory, base = load_inventory(ctx)
    actor = acting_as(Role.OPERATOR)
    engine = _engine(inventory, base, policy)
    if kind != "full" and engine.policy.engine != "pgbackrest":
        raise UsageError(f"{policy} is backed up by {engine.policy.engine}, which takes full backups only")
    store = open_store(create=True)
    runs = BackupRuns(store, clock=SystemClock(), holder=f"cli:{socket.gethostname()}:{os.getpid()}",
                      actor=actor)
    try:
        with _progress(not json_out and out.is_terminal) as progress:
            result = runs.run(engine, kind=kind, trigger="manual", progress=progress, check_after=check,
                              refuse_unreachable=True)
    finally:
        runs.close()
        store.close()
    problems = {repo: found for repo, found in result.repository_problems.items() if found}
    if json_out:
        print_json(result.as_dict())
    elif result.state == "failed":
        out.print(f"backup {result.backup_id} of {policy} [red]failed[/] after {result.seconds:.1f} s: "
                  f"{escape(result.error or '')}")
    else:
        out.print(f"backup {result.backup_id} of {policy}: {result.kind}, "
                  f"{format_value(result.size_bytes, 'bytes')}, in {result.seconds:.1f} s; "
                  f"copies in {', '.join(result.copies)}")
        for repo, found in problems.items():
            out.print(f"[yellow]repository {repo}[/]: {escape(found[0])}"
                      + (f" (and {len(found) - 1} more)" if len(found) > 1 else ""))
    raise typer.Exit(2 if result.state == "failed" else 1 if problems else 0)


@app.command("list")
def list_backups(
    ctx: typer.Context,
    policy: str = typer.Argument(None, metavar="[POLICY]", help="Only this policy's backups."),
    limit: int = typer.Option(30, "--limit", min=1, max=1000, help="How many, newest first."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The catalog: backups newest first, with their state, size and copies."""
    from opsplane.backup import service

    if policy is not None:
        from opsplane.backup.policy import apply

        apply(load_inventory(ctx)[0], policy)  # an unknown name is refused with the defined ones
    with open_store().session() as session:
        rows = service.get_all(session, policy=policy, limit=limit)
        held = service.copies(session, [row.id for row in rows])
        listed = [service.as_dict(row, held[row.id]) for row in rows]
    if json_out:
        print_json(listed)
        return
    if not listed:
        out.print("no backups yet" + (f" of {policy}" if policy else "")
                  + "; `opsplane backup run POLICY` takes one")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "policy", "kind", "state", "finished", "size", "copies"):
        table.add_column(column, no_wrap=column != "copies")
    for item in listed:
        state = item["state"]
        colour = {"failed": "red", "verify-failed": "red", "running": "yellow"}.get(state)
        table.add_row(str(item["id"]), item["policy"], item["kind"],
                      f"[{colour}]{state}[/]" if colour else state,
                      (item["finished_at"] or item["started_at"])[:19].replace("T", " "),
                      format_value(item["size_bytes"], "bytes") if item["size_bytes"] is not None else "-",
                      ", ".join(c["repository"] for c in item["copies"]) or escape(item["error"] or "-"))
    out.print(table)


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    policy: str = typer.Argument(..., metavar="POLICY", help="The backup policy."),
    backup_id: int = typer.Option(None, "--backup", help="This backup (default: the newest good one)."),
    repository: str = typer.Option(None, "--repository", help="Restore from this repository (default: the "
                                   "first that holds the backup)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Restore a backup into a scratch server, check it, and compare it with what it held.

    Exit 0 when it restored and matched, 2 when it did not, 3 when refused."""
    from opsplane.backup.flows import verify
    from opsplane.backup.policy import scratch_dir

    inventory, base = load_inventory(ctx)
    actor = acting_as(Role.OPERATOR)
    engine = _engine(inventory, base, policy)
    scratch = scratch_dir(inventory)
    scratch = scratch if scratch.is_absolute() else base / scratch
    store = open_store(create=True)
    try:
        with _progress(not json_out and out.is_terminal) as progress:
            result = verify(store, engine, scratch=scratch, clock=SystemClock(), actor=actor,
                            backup_id=backup_id, repository=repository, progress=progress)
    finally:
        store.close()
    if json_out:
        print_json({"backup": result.backup_id, "repository": result.repository, "ok": result.ok,
                    "problems": list(result.problems), "seconds": round(result.seconds, 1),
                    "report": dict(result.report)})
    elif result.ok:
        out.print(f"backup {result.backup_id} of {policy} from {result.repository}: restored and checked in "
                  f"{result.seconds:.1f} s; contents match what was recorded")
    else:
        out.print(f"backup {result.backup_id} of {policy} from {result.repository}: [red]verification "
                  f"failed[/] after {result.seconds:.1f} s")
        for problem in result.problems:
            out.print(f"  {escape(problem)}")
    raise typer.Exit(0 if result.ok else 2)


@app.command("status")
def status_command(
    ctx: typer.Context,
    policy: str = typer.Argument(None, metavar="[POLICY]", help="Only this policy."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each policy's copies against its RPO and 3-2-1, its last verification and drill.

    Shows the newest good copy per repository and what is wrong.

    Exit 0 when every policy is sound, 1 when something falls short."""
    from opsplane.backup.policy import applied, apply
    from opsplane.backup.status import policy_status

    inventory, base = load_inventory(ctx)
    if not inventory.backup.policies:
        from opsplane.errors import UsageError

        raise UsageError("the inventory has no backup policies: add backup.repositories and "
                         "backup.policies (docs/backups.md)")
    now = SystemClock().now()
    chosen = [apply(inventory, policy)] if policy else applied(inventory)
    archived = {item.name: _archive_reach(inventory, base, item) for item in chosen if item.physical}
    with open_store().session() as session:
        found = [policy_status(session, inventory, item, now=now, archived=archived.get(item.name))
                 for item in chosen]
        reports = [item.as_dict() for item in found]
    if json_out:
        print_json(reports)
    else:
        for report in reports:
            _print_status(report)
    raise typer.Exit(1 if any(report["problems"] for report in reports) else 0)


def _archive_reach(inventory: Any, base: Path, policy: Any) -> dict[str, Any]:
    """How far a restore from each repository reaches through the WAL archive, read now from the
    server and pgBackRest (nothing when they cannot be read: the backups alone count then)."""
    from opsplane.backup.archive import archived_until
    from opsplane.backup.factory import open_engine
    from opsplane.errors import OpsplaneError

    try:
        state = open_engine(inventory, policy, environ=os.environ, base_dir=base).archive_state()
    except OpsplaneError:
        return {}
    return archived_until(state) if state is not None else {}


def _print_status(report: dict[str, Any]) -> None:
    from opsplane.backup.compliance import duration_words

    rule = report["rule_321"]
    head = (f"[bold]{report['policy']}[/] ({report['engine']}"
            + (f", {report['component']}" if report["component"] else "")
            + f"): RPO {duration_words(report['rpo_seconds'])}, RTO {duration_words(report['rto_seconds'])}; "
            + ("[green]3-2-1 met[/]" if rule["met"] else "[red]3-2-1 not met[/]"))
    out.print(head)
    last = report["last"]
    if last is None:
        out.print("  no backup yet")
    else:
        running = " (a backup is running now)" if report["running"] else ""
        out.print(f"  last backup {last['id']}: {last['kind']} {last['state']}"
                  f"{', ' + escape(last['error']) if last['error'] else ''}{running}")
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 2))
    for column in ("repository", "newest recoverable point", "age", ""):
        table.add_column(column)
    for repo in report["repositories"]:
        age = duration_words(repo["age_seconds"]) if repo["age_seconds"] is not None else "-"
        verdict = "[red]stale[/]" if repo["stale"] else "[green]ok[/]"
        table.add_row(repo["repository"], (repo["newest"] or "none")[:19].replace("T", " "), age, verdict)
    out.print(table)
    for name, what in (("last_verify", "verification"), ("last_drill", "drill")):
        done = report[name]
        when = done["started_at"][:19].replace("T", " ") if done else ""
        said = "never" if done is None else f"{done['id']} {done['state']} at {when}"
        out.print(f"  last {what}: {said}")
    for problem in report["problems"]:
        out.print(f"  [yellow]![/] {escape(problem)}")


@app.command("prune")
def prune_command(
    ctx: typer.Context,
    policy: str = typer.Argument(None, metavar="[POLICY]",
                                 help="Only this policy (default: every one)."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Say what would be kept and removed; remove nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Remove the backups the retention policy no longer keeps, from every repository.

    Never fewer good backups than the policy's min_good. Exit 0 when done, 2 when a repository
    refused to remove something (it stays listed and is tried again next time)."""
    from opsplane.backup.policy import applied, apply
    from opsplane.backup.prune import prune
    from opsplane.cli_support import cli_actor

    inventory, base = load_inventory(ctx)
    actor = cli_actor() if dry_run else acting_as(Role.OPERATOR)
    policies = [apply(inventory, policy)] if policy else applied(inventory)
    store = open_store(create=not dry_run)
    results = []
    try:
        for chosen in policies:
            engine = _engine(inventory, base, chosen.name)
            results.append(prune(store, engine, time_zone=inventory.backup.time_zone, clock=SystemClock(),
                                 actor=actor, dry_run=dry_run))
    finally:
        store.close()
    if json_out:
        print_json([result.as_dict() for result in results])
    else:
        for result in results:
            verb = "would remove" if dry_run else "removed"
            out.print(f"[bold]{result.policy}[/]: {result.plan.summary()}")
            for decision in result.plan.decisions:
                mark = "keep  " if decision.keep else ("drop  " if dry_run else "remove")
                why = escape("; ".join(decision.reasons))
                when = f"{decision.backup.finished:%Y-%m-%d %H:%M}"
                out.print(f"  {mark} backup {decision.backup.id} ({when}): {why}")
            if not dry_run:
                out.print(f"  {verb} {len(result.removed)}")
            for backup, error in result.failed:
                out.print(f"  [red]backup {backup} not removed[/]: {escape(error)}")
    raise typer.Exit(2 if any(result.failed for result in results) else 0)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="backup", help="Backups: run, list, verify, status against RPO and 3-2-1.")
