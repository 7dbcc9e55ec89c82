"""Running a checklist: a runbook run in mode auto with nobody at it (every item is a safe look),
kept as the report, with its counts and a `checklist.ran` event.

`run` is how anything runs one: `opsplane checklist run`, the API and `serve`'s worker, which
passes the scheduled slot it claimed and a platform that reads `serve`'s own samples.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from opsplane.checklists import service
from opsplane.clock import Clock
from opsplane.runbooks.flows import StepPlatform
from opsplane.runbooks.loader import LoadedRunbook
from opsplane.runbooks.runner import Runner, StepShown
from opsplane.store import Store

log = logging.getLogger(__name__)


def run(store: Store, platform: StepPlatform, checklist: LoadedRunbook, *, clock: Clock, trigger: str,
        requested_by: str, slot: datetime | None = None,
        watcher: Callable[[StepShown], None] | None = None,
        sleep: Callable[[float], None] = time.sleep) -> int:
    """Run `checklist` now; the checklist run's id (its report: `service.get`)."""
    with store.session() as session:
        row = service.begin(session, runbook=checklist.runbook, trigger=trigger, requested_by=requested_by,
                            slot=slot, now=clock.now())
        row_id, run_id = row.id, row.run_id
    driver = Runner(store, platform, clock=clock, actor=requested_by, person=None, sleep=sleep,
                    watcher=watcher)
    try:
        driver.drive(run_id)
    except Exception:  # the report is kept all the same: its unfinished run counts as a failed item
        log.exception("checklist %s: its run %s stopped", checklist.name, run_id)
    finally:
        driver.close()
    with store.session() as session:
        row = service.get(session, row_id)
        service.finish(session, row, actor=requested_by, now=clock.now())
    return row_id


def report(store: Store, checklist_run: int) -> dict[str, Any]:
    """The run with each item, as `show`, `--json` and the API give it."""
    from opsplane.runbooks import service as runs

    with store.session() as session:
        row = service.get(session, checklist_run)
        return service.as_dict(row, service.items(runs.steps(session, row.run_id)))
