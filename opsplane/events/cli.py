"""`opsplane events`: read the event log, check its hash chain, export it signed for auditors."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from opsplane.auth.service import Role
from opsplane.cli_support import acting_as, err, open_store, out, parse_when, print_json
from opsplane.clock import SystemClock
from opsplane.events import service
from opsplane.events.summary import summarise

app = typer.Typer(invoke_without_command=True)
MAX_PROCESSES = 4  # `events verify` walks a large log in up to this many processes


@app.callback()
def events(
    ctx: typer.Context,
    service_name: str = typer.Option(None, "--service", help="Only events about this service."),
    kind: str = typer.Option(None, "--kind", help="Exact kind, or a prefix ending in * (check.*)."),
    since: str = typer.Option(None, "--since", help="Age (24h) or ISO time."),
    until: str = typer.Option(None, "--until", help="Age (1h) or ISO time."),
    limit: int = typer.Option(50, "--limit", min=1, max=10000),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Show events, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    now = SystemClock().now()
    store = open_store()
    with store.session() as session:
        rows = [e.as_dict() for e in service.get_all(
            session, service=service_name, kind=kind, since=parse_when(since, now),
            until=parse_when(until, now), limit=limit)]
    if json_out:
        print_json(rows)
        return
    table = Table("TIME", "KIND", "TARGET", "OUTCOME", "ACTOR", "WHAT")
    for e in rows:
        what = summarise(e["kind"], e["details"], target=e["target"], service=e["service"],
                         outcome=e["outcome"])
        table.add_row(e["ts"][:19].replace("T", " "), e["kind"], e["target"], e["outcome"],
                      e["actor"], Text(what))
    out.print(table)


@app.command("verify")
def verify(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Check the event log's hash chain: exit 0 intact, 2 broken, naming each event found wrong.

    Every event's hash is computed again from its content and checked against the one stored
    and the link of the event after it, from the checkpoint retention left (or the first
    event) to the chain's head. The outcome is recorded as an `events.verified` event."""
    from opsplane.events.verify import record_verified, verify_store

    actor = acting_as(Role.VIEWER)
    store = open_store()
    try:
        processes = min(os.cpu_count() or 1, MAX_PROCESSES)
        if json_out or not err.is_terminal:
            verification = verify_store(store, processes=processes)
        else:
            with err.status("verifying the event log…") as status:
                verification = verify_store(
                    store, processes=processes,
                    progress=lambda n: status.update(f"verifying the event log: {n:,} events…"))
        with store.session() as session:
            record_verified(session, verification, actor=actor, now=SystemClock().now())
    finally:
        store.close()
    if json_out:
        print_json(verification.as_dict())
    else:
        state = verification.state
        if state.checkpoint.id:
            when = f" (archived {state.checkpoint_at:%Y-%m-%d})" if state.checkpoint_at else ""
            out.print(f"starts from the checkpoint after event {state.checkpoint.id}{when}, hash "
                      f"{state.checkpoint.hash[:16]}…: earlier events are in the archives")
        colour = "green" if verification.intact else "red"
        out.print(f"[{colour}]{escape(verification.summary())}[/]")
        for problem in verification.result.problems:
            out.print(f"  [red]✗[/] event {problem.event_id}: {problem.wrong}: {escape(problem.what)}")
        more = sum(verification.result.counts.values()) - len(verification.result.problems)
        if more > 0:
            out.print(f"  … and {more:,} more (see --json for the counts)")
    raise typer.Exit(0 if verification.intact else 2)


@app.command("export")
def export_(
    out_file: Path = typer.Option(..., "--out", help="The file to write (JSON lines and a signed manifest)."),
    since: str = typer.Option(None, "--since", help="From this time (ISO time or an age such as 30d)."),
    until: str = typer.Option(None, "--until", help="Up to this time, exclusive (ISO time or an age)."),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Export events for auditors, signed with the key OPSPLANE_AUDIT_KEY_FILE names.

    The file holds the stretch of the chain from the first event at or after --since to the
    last one before --until, one JSON line per event, and a manifest signed with Ed25519: the
    first and last hashes, the chain's head, the count and a digest of the lines. Exit 2 when
    the stretch does not verify (the file is still written and its manifest says so)."""
    from opsplane.errors import UsageError
    from opsplane.events import export
    from opsplane.events.keys import signing_key

    actor = acting_as(Role.OPERATOR)
    key = signing_key()
    now = SystemClock().now()
    begin, end = parse_when(since, now), parse_when(until, now)
    store = open_store()
    try:
        written = export.write(store, out_file, key, now=now, since=begin, until=end)
        if written is None:
            raise UsageError("no events in that range; nothing written")
        manifest = written.manifest
        with store.session() as session:
            service.record(session, kind="events.exported", actor=actor, target="events",
                           outcome="ok" if written.intact else "broken", ts=now, details={
                               "file": str(out_file), "first": manifest["first"]["id"],
                               "last": manifest["last"]["id"], "events": manifest["events"],
                               "since": manifest["since"], "until": manifest["until"]})
    finally:
        store.close()
    if json_out:
        print_json(manifest)
    else:
        colour = "green" if written.intact else "red"
        out.print(f"[{colour}]{manifest['events']:,} events[/] ({manifest['first']['id']} to "
                  f"{manifest['last']['id']}) written to {escape(str(out_file))}, signed by key "
                  f"{manifest['key'][:16]}…; last hash {manifest['last']['hash']}")
        if not written.intact:
            out.print(f"[red]the stretch does not verify: {manifest['problems']}[/]")
    raise typer.Exit(0 if written.intact else 2)


@app.command("keygen")
def keygen(
    out_dir: Path = typer.Option(..., "--out", help="Directory for the key pair's two PEM files."),
) -> None:
    """Make an Ed25519 key pair for signing exports and archives (the private file is 0600)."""
    from opsplane.events.keys import KEY_ENV, generate

    private, public = generate(out_dir)
    out.print(f"private key: {escape(str(private))} (mode 0600); point {KEY_ENV} at it, keep it out of "
              "the inventory")
    out.print(f"public key:  {escape(str(public))}; give it to whoever checks exports "
              "(`opsplane events verify-export FILE --public-key PEM`)")


@app.command("verify-export")
def verify_export(
    file: Path = typer.Argument(..., help="An export or archive file."),
    public_key: Path = typer.Option(..., "--public-key", help="The PEM public key of the signer."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check an export or archive: its signature, its lines and the chain inside. Exit 0 good, 2 not.

    Needs no store: the file and the public key are enough."""
    from opsplane.events import export
    from opsplane.events.keys import public_key as load_public

    found = export.check(file, load_public(public_key))
    if json_out:
        print_json(found.as_dict())
    else:
        manifest = found.manifest
        first, last = manifest.get("first") or {}, manifest.get("last") or {}
        if found.ok:
            out.print(f"[green]good[/]: {manifest.get('events'):,} events, {first.get('id')} to "
                      f"{last.get('id')} "
                      f"({manifest.get('first_ts')} to {manifest.get('last_ts')}), signature and chain hold; "
                      f"last hash {last.get('hash')}")
        else:
            out.print(f"[red]refused[/]: {escape(str(file))}")
            for problem in found.problems[:50]:
                out.print(f"  [red]✗[/] {escape(problem)}")
    raise typer.Exit(0 if found.ok else 2)
