"""Exports for auditors through the command: a key pair made by `events keygen` (the private
half 0600), an export of a time range signed with it, checked with the public half alone; a
changed line, a dropped line, a changed manifest or another key's public half is refused."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsplane.events import service
from opsplane.events.keys import PRIVATE_NAME, PUBLIC_NAME
from opsplane.store import Store
from tests.events.checkout import command
from tests.support.cli import Opsplane

DAY0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def cli(tmp_path: Path) -> Opsplane:
    ran = command(tmp_path)
    ran("events", "keygen", "--out", "keys")
    ran.env["OPSPLANE_AUDIT_KEY_FILE"] = str(tmp_path / "keys" / PRIVATE_NAME)
    store = Store.open(ran.env["OPSPLANE_DATABASE_URL"])
    with store.session() as session:
        for day in range(10):
            service.record(session, kind="deploy.finished", actor="ana", target=f"deploy:{day}",
                           service="web", outcome="ok", ts=DAY0 + timedelta(days=day, hours=1),
                           details={"day": day, "p": 0.5})
    store.close()
    return ran


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_replaces_it(cli: Opsplane) -> None:
    private = cli.cwd / "keys" / PRIVATE_NAME
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (cli.cwd / "keys" / PUBLIC_NAME).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    refused = cli("events", "keygen", "--out", "keys", code=3)
    assert "exists" in refused.stderr + refused.stdout


def test_an_export_of_a_range_is_signed_and_checks_with_the_public_key(cli: Opsplane) -> None:
    manifest = cli.json("events", "export", "--since", "2026-11-03T00:00:00Z",
                        "--until", "2026-11-06T00:00:00Z", "--out", "audit.jsonl")
    assert manifest["events"] == 3 and manifest["intact"]
    assert (manifest["first"]["id"], manifest["last"]["id"]) == (3, 5)
    lines = (cli.cwd / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines[:-1]] == [3, 4, 5]
    assert json.loads(lines[1])["prev_hash"] == json.loads(lines[0])["hash"]
    assert manifest["start"]["hash"] == json.loads(lines[0])["prev_hash"]
    checked = cli.json("events", "verify-export", "audit.jsonl", "--public-key", f"keys/{PUBLIC_NAME}")
    assert checked["ok"] and checked["chain"]["checked"] == 3
    said = cli("events", "verify-export", "audit.jsonl", "--public-key", f"keys/{PUBLIC_NAME}")
    assert "good" in said.stdout
    assert "PRIVATE" not in said.stdout + said.stderr
    with_export = cli.json("events", "--kind", "events.exported")
    assert with_export[0]["details"]["events"] == 3


def _tampered(cli: Opsplane, change: str) -> str:
    cli("events", "export", "--out", "audit.jsonl")
    path = cli.cwd / "audit.jsonl"
    lines = path.read_text().splitlines()
    if change == "line":
        event = json.loads(lines[2])
        event["actor"] = "mallory"
        lines[2] = json.dumps(event, sort_keys=True, separators=(",", ":"))
    elif change == "dropped":
        del lines[4]
    elif change == "manifest":
        last = json.loads(lines[-1])
        last["manifest"]["events"] = 9
        lines[-1] = json.dumps(last)
    path.write_text("\n".join(lines) + "\n")
    refused = cli("events", "verify-export", "audit.jsonl", "--public-key", f"keys/{PUBLIC_NAME}", code=2)
    return refused.stdout


def test_a_changed_event_line_is_refused_and_named(cli: Opsplane) -> None:
    said = _tampered(cli, "line")
    assert "refused" in said and "event 3 was changed" in said and "not the ones the manifest" in said


def test_a_dropped_event_line_is_refused(cli: Opsplane) -> None:
    said = _tampered(cli, "dropped")
    assert "event 5 is missing" in said and "9 events in the file, the manifest says 10" in said


def test_a_changed_manifest_is_refused(cli: Opsplane) -> None:
    assert "signature does not match" in _tampered(cli, "manifest")


def test_another_keys_public_half_is_refused(cli: Opsplane) -> None:
    cli("events", "export", "--out", "audit.jsonl")
    cli("events", "keygen", "--out", "other")
    said = cli("events", "verify-export", "audit.jsonl", "--public-key", f"other/{PUBLIC_NAME}",
               code=2).stdout
    assert "signature does not match" in said


def test_export_without_a_key_says_how_to_get_one(cli: Opsplane) -> None:
    del cli.env["OPSPLANE_AUDIT_KEY_FILE"]
    refused = cli("events", "export", "--out", "audit.jsonl", code=3)
    assert "OPSPLANE_AUDIT_KEY_FILE is not set" in refused.stderr
    assert not (cli.cwd / "audit.jsonl").exists()


def test_the_range_takes_since_inclusive_and_until_exclusive_to_the_microsecond(store: Store,
                                                                             tmp_path: Path) -> None:
    from opsplane.events import export
    from opsplane.events.keys import generate, public_key, signing_key

    at = [DAY0 + timedelta(seconds=n, microseconds=250) for n in range(8)]
    with store.session() as session:
        for n, ts in enumerate(at):
            service.record(session, kind="token.created", actor="ana", target=f"t{n}", outcome="ok", ts=ts)
    private, public = generate(tmp_path / "keys")
    key = signing_key({"OPSPLANE_AUDIT_KEY_FILE": str(private)})
    written = export.write(store, tmp_path / "range.jsonl", key, now=DAY0 + timedelta(days=1), since=at[3],
                           until=at[6])
    assert written is not None
    assert (written.manifest["first"]["id"], written.manifest["last"]["id"]) == (4, 6)
    assert export.check(tmp_path / "range.jsonl", public_key(public)).ok
