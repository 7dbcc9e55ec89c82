"""Whether point-in-time recovery still works: continuous archiving judged from the server's
archiver and what each repository holds.

Recovery to a moment needs every WAL segment from a backup up to it. Two things break that
silently: an archive_command that fails (PostgreSQL keeps the segments and retries, until its
disk fills), and a repository that lacks segments the server counts as archived (pgBackRest's
asynchronous archiving drops WAL when its queue overflows and reports success, so recovery past
the gap is impossible until the next backup). Pure: the state and a memory of when each
repository was last seen complete are passed in."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime

from opsplane.backup.engines import ArchiveState


def judge_archive(state: ArchiveState, *, complete_at: MutableMapping[str, datetime],
                  now: datetime) -> dict[str, tuple[datetime, str]]:
    """The repositories whose archive is broken at `now`: since when no later moment can be
    restored, and why. `complete_at` remembers when each repository last held every segment the
    server archived; it is updated here."""
    broken: dict[str, tuple[datetime, str]] = {}
    for repository, newest in state.repositories.items():
        behind = state.last_archived_wal is not None and (newest is None or newest < state.last_archived_wal)
        if state.failing is None and not behind:
            complete_at[repository] = now
            continue
        since = complete_at.get(repository) or state.last_archived_time or now
        if state.failing is not None:
            since = min(since, state.last_archived_time or since)
            broken[repository] = (since, state.failing)
        else:
            broken[repository] = (since, f"it holds WAL up to {newest or 'nothing'}, the server archived up "
                                         f"to {state.last_archived_wal}: segments are missing")
    return broken


def archived_until(state: ArchiveState) -> dict[str, datetime]:
    """For each repository that holds every segment the server archived, the moment a restore
    from it can reach: when the newest segment was archived. Repositories behind, or an archiver
    that is failing, reach no further than their backups."""
    if state.failing is not None or state.last_archived_time is None:
        return {}
    last = state.last_archived_wal
    return {repository: state.last_archived_time for repository, newest in state.repositories.items()
            if newest is not None and last is not None and newest >= last}
