"""What a demo recorded about the processes it started, and stopping them from that record.

A demo writes `pids.json` in its directory: the pid and start time of itself, its PostgreSQL
server, its Redis server and the S3 store of its offsite backups, and the scratch directories
its PostgreSQL server needed outside it (when the server's account cannot reach the demo's
directory). The process runtime keeps its own record (`run/state.json`) of its supervisor and
of every instance it runs. Together they name everything a demo started, so a demo whose
terminal is gone, or that was killed, can be found and stopped from another terminal. A
recorded process counts as running only while its pid still belongs to a process with the
recorded start time: a pid the kernel has since given to another program is never signalled.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from opsplane.drivers.runtime.processes import (
    ProcessIdentity,
    identify,
    is_alive,
    session_members,
    stop_session,
)
from opsplane.drivers.runtime.protocol import StatePaths, read_state
from opsplane.errors import UsageError

PIDS_FILE = "pids.json"
SCRATCH = "scratch"
RUNTIME_DIR = "run"  # the demo inventory's runtime.state_dir
# what each record is called when a person reads it
LABELS = {"demo": "demo", "postgres": "PostgreSQL", "redis": "Redis", "s3": "S3 store (moto)",
          "pgbouncer": "PgBouncer"}
# PostgreSQL's fast shutdown is SIGINT; everything else stops on SIGTERM
_STOP_SIGNALS = {"postgres": signal.SIGINT}
_DEMO_STOP_TIMEOUT = 90.0  # the demo stops the shop, Redis and PostgreSQL before it exits
_STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class RecordedProcess:
    """One process a demo started: what it is, and its identity."""

    name: str  # demo, postgres, redis, supervisor, or a runtime service such as gateway
    identity: ProcessIdentity
    session: bool = False  # a runtime instance or the supervisor: its whole session counts

    @property
    def label(self) -> str:
        what = LABELS.get(self.name) or ("runtime supervisor" if self.name == "supervisor" else self.name)
        return f"{what} (pid {self.identity.pid})"

    def running(self) -> bool:
        if self.session:
            return bool(session_members(self.identity))
        return is_alive(self.identity)


@dataclass
class StopReport:
    """What `stop` found running and what of it is gone now."""

    stopped: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def record(base: Path, processes: dict[str, int | None], scratch: Sequence[Path] = ()) -> None:
    """Write the demo's own record: each named pid with its start time (None: left out), and
    the scratch directories to remove once everything has stopped."""
    found: dict[str, Any] = {}
    for name, pid in processes.items():
        identity = identify(pid) if pid else None
        if identity is not None:
            found[name] = {"pid": identity.pid, "create_time": identity.create_time}
    if scratch:
        found[SCRATCH] = [str(path) for path in scratch]
    path = base / PIDS_FILE
    temporary = path.with_name(f".{PIDS_FILE}.{os.getpid()}")
    temporary.write_text(json.dumps(found))
    os.replace(temporary, path)


def own(base: Path) -> dict[str, ProcessIdentity]:
    """The demo's own recorded servers (postgres, redis, s3, demo) by name, running or not."""
    return {name: process.identity for name, process in _own_records(base).items()}


def replace(base: Path, name: str, pid: int) -> None:
    """Record `pid` as the demo's `name` server from now on (a game day started it again after
    stopping it), so that `demo --stop` still finds it. Nothing happens without a record."""
    path = base / PIDS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    identity = identify(pid)
    if not isinstance(data, dict) or identity is None:
        return
    data[name] = {"pid": identity.pid, "create_time": identity.create_time}
    temporary = path.with_name(f".{PIDS_FILE}.{os.getpid()}")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def forget(base: Path) -> None:
    """Remove the record and the scratch directories it names (once nothing runs)."""
    try:
        scratch = json.loads((base / PIDS_FILE).read_text()).get(SCRATCH) or []
    except (OSError, ValueError, AttributeError):
        scratch = []
    for path in map(Path, scratch):
        # only what a sandbox makes: opsplane-* directly in the temporary directory
        if path.parent == Path(tempfile.gettempdir()) and path.name.startswith("opsplane-"):
            shutil.rmtree(path, ignore_errors=True)
    (base / PIDS_FILE).unlink(missing_ok=True)


def recorded(base: Path) -> list[RecordedProcess]:
    """Every process the demo in `base` and its runtime recorded, running or not: the demo
    first, then the runtime's supervisor and instances, then Redis, PostgreSQL and the S3
    store of the offsite backups."""
    own = _own_records(base)
    found = [own.pop("demo")] if "demo" in own else []
    state = read_state(StatePaths(base / RUNTIME_DIR)) or {}
    supervisor = state.get("supervisor") or {}
    if supervisor.get("pid") and supervisor.get("create_time"):
        found.append(RecordedProcess("supervisor", _identity(supervisor), session=True))
    for name, service in (state.get("services") or {}).items():
        for item in service.get("instances") or []:
            if item.get("pid") and item.get("create_time"):
                found.append(RecordedProcess(str(name), _identity(item), session=True))
    found += [own[name] for name in ("redis", "pgbouncer", "postgres", "s3") if name in own]
    return found


def running(base: Path) -> list[RecordedProcess]:
    """The recorded processes that still run (the calling process left out)."""
    return [p for p in recorded(base) if p.identity.pid != os.getpid() and p.running()]


def ensure_not_running(base: Path) -> None:
    """UsageError naming what still runs when a demo in `base` has any process left."""
    alive = running(base)
    if alive:
        raise UsageError(
            f"a demo is already running from {base}: {', '.join(p.label for p in alive)}; "
            f"stop it with Ctrl-C in its terminal or `opsplane demo --stop --dir {base}`"
        )


def stop(base: Path, *, demo_timeout: float = _DEMO_STOP_TIMEOUT,
         on_progress: Callable[[str], None] | None = None) -> StopReport:
    """Stop everything the demo in `base` left running and say what that was.

    A live demo process is asked first (SIGTERM: it stops what it started, in order); then
    the runtime stops its supervisor and instances from its own record; then whatever is
    still alive is ended by its recorded identity. The record is removed once nothing is left.
    """
    before = running(base)
    report = StopReport()
    if not before:
        forget(base)
        return report
    for process in before:
        if process.name == "demo":
            _say(on_progress, f"asking the demo (pid {process.identity.pid}) to stop everything it started …")
            _end(process, signal.SIGTERM, demo_timeout)
    if any(p.session and p.running() for p in before):
        _runtime_down(base)
    for process in before:
        if process.running():
            _end(process, _STOP_SIGNALS.get(process.name, signal.SIGTERM), _STOP_TIMEOUT)
    for process in before:
        (report.left if process.running() else report.stopped).append(process.label)
    if not report.left:
        forget(base)
    return report


def _runtime_down(base: Path) -> None:
    """`opsplane down` for the demo's inventory: the runtime stops what its own record names
    (through the supervisor when it answers) and records the stop in the event log."""
    from opsplane.config.loader import load
    from opsplane.demo.stack import INVENTORY_FILE, runtime_environ
    from opsplane.drivers.runtime import open_runtime
    from opsplane.errors import OpsplaneError

    try:
        open_runtime(load(base / INVENTORY_FILE), base_dir=base, environ=runtime_environ(base),
                     actor="system:demo").down()
    except OpsplaneError:
        # an inventory that no longer loads: the recorded identities are ended one by one
        pass


def _end(process: RecordedProcess, signum: int, timeout: float) -> None:
    """Signal the process (its whole session for a runtime process) and wait for it to end;
    SIGKILL after `timeout`."""
    if process.session:
        stop_session(process.identity, timeout)
        return
    try:
        target = psutil.Process(process.identity.pid)
        if not is_alive(process.identity):
            return
        target.send_signal(signum)  # psutil refuses when the pid now names another process
        deadline = time.monotonic() + timeout
        while is_alive(process.identity):
            if time.monotonic() > deadline:
                target.kill()
                deadline = time.monotonic() + 5.0
                while is_alive(process.identity) and time.monotonic() < deadline:
                    time.sleep(0.05)
                return
            time.sleep(0.05)
    except psutil.NoSuchProcess:
        return


def _say(on_progress: Callable[[str], None] | None, text: str) -> None:
    if on_progress is not None:
        on_progress(text)


def _identity(item: dict[str, Any]) -> ProcessIdentity:
    return ProcessIdentity(int(item["pid"]), float(item["create_time"]))


def _own_records(base: Path) -> dict[str, RecordedProcess]:
    try:
        data = json.loads((base / PIDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    found = {}
    for name, item in data.items() if isinstance(data, dict) else ():
        if isinstance(item, dict) and item.get("pid") and item.get("create_time"):
            found[str(name)] = RecordedProcess(str(name), _identity(item))
    return found
