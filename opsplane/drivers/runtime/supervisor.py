"""The supervisor: one daemon per state directory that runs the services' instances.

    python -m opsplane.drivers.runtime.supervisor --state-dir DIR [--detach]

`opsplane up` starts it with --detach: the command returns once the supervisor listens on
its socket (or says why it could not start). It holds `supervisor.lock` for its lifetime, so
a second one for the same directory exits at once, answering "running". It answers one JSON
request per connection (ping, up, down, restart, scale, track, replace, status), except `watch`, whose
connection it keeps to tell the watcher of every exit the moment it sees it and of the
state after every change (`serve` watches, to check an exited service at once). It keeps the
state file current, samples CPU and memory every few seconds, and ends after a `down` that
leaves no service, or on SIGTERM, stopping every instance first.

On starting it adopts what the state file says a supervisor that is gone (killed, say) left
running: each instance whose pid still belongs to the process recorded there is watched and
restarted as though this supervisor had started it, and a `runtime.adopted` event says so.

Releases: a `track` request runs another release of a service as a group of its own
(`catalog@v2`, on free ports) and answers once each instance answers on its port, or says which
did not and why; `replace` moves one instance to another release on its port, for a rolling
deploy. Each instance's release is in the state file, so adoption keeps it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from opsplane.clock import Clock, SystemClock
from opsplane.drivers.runtime.base import InstanceState
from opsplane.drivers.runtime.groups import ServiceGroup, await_running, not_running
from opsplane.drivers.runtime.instance import SYSTEM_ACTOR, Instance, Recorder
from opsplane.drivers.runtime.logwriter import log_path
from opsplane.drivers.runtime.output import LogWriter
from opsplane.drivers.runtime.processes import ProcessIdentity, is_alive, stop_session
from opsplane.drivers.runtime.protocol import StatePaths, read_state, unix_path, write_state
from opsplane.drivers.runtime.recorder import EventRecorder
from opsplane.drivers.runtime.releases import base_service
from opsplane.drivers.runtime.spec import ServiceSpec

log = logging.getLogger("opsplane.runtime")

_REQUEST_LIMIT = 4 * 1024 * 1024
_START_WAIT = 30.0
# A watcher with this much unread is dropped rather than buffered for without end; it
# reconnects and starts again from a state notice.
_WATCH_BUFFER = 1024 * 1024


class Refused(Exception):
    """A request that cannot be carried out; `usage` marks the caller's mistake, `stopping` a
    supervisor on its way out (the request is for the next one)."""

    def __init__(self, message: str, *, usage: bool = True, stopping: bool = False) -> None:
        super().__init__(message)
        self.usage = usage
        self.stopping = stopping


class Supervisor:
    def __init__(
        self,
        paths: StatePaths,
        *,
        environ: Mapping[str, str],
        recorder: Recorder,
        clock: Clock | None = None,
        sample_every: float = 2.0,
    ) -> None:
        self.paths = paths
        self.environ = environ
        self._watchers: set[asyncio.StreamWriter] = set()
        self.recorder: Recorder = _AnnouncingRecorder(recorder, self._announce)
        self.clock = clock or SystemClock()
        self.sample_every = sample_every
        self.groups: dict[str, ServiceGroup] = {}
        self.shutdown = asyncio.Event()
        self._closing = False  # decided under the lock: no new work is accepted any more
        self._save_pending = False
        self._closed = False
        self._lock = asyncio.Lock()  # one change at a time; status reads need no lock
        self._me = psutil.Process()

    # --- the daemon ---------------------------------------------------------------------

    async def serve(self, ready: Any = None) -> None:
        """Listen, signal readiness, run until shutdown, then stop everything and clean up."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.shutdown.set)
        self.paths.socket.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with unix_path(self.paths.socket) as address:
            listener.bind(address)
        os.chmod(self.paths.socket, 0o600)
        server = await asyncio.start_unix_server(self._client, sock=listener, limit=_REQUEST_LIMIT)
        self._adopt(read_state(self.paths))
        self._save()
        sampler = asyncio.create_task(self._sample_forever())
        log.info("supervisor %d listening on %s", os.getpid(), self.paths.socket)
        if ready is not None:
            ready()
        try:
            await self.shutdown.wait()
        finally:
            server.close()
            sampler.cancel()
            async with self._lock:
                self._closing = True
                await self._stop_groups(list(self.groups), SYSTEM_ACTOR, reason="supervisor stopping")
            self._announce({"event": "state", "instances": []})  # nothing runs any more
            for watcher in list(self._watchers):
                watcher.close()
            self._closed = True
            self.paths.socket.unlink(missing_ok=True)
            self.paths.state.unlink(missing_ok=True)
            log.info("supervisor %d stopped", os.getpid())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            if isinstance(request, dict) and request.get("op") == "watch":
                await self._watch(reader, writer)
                return
            answer = await self.handle(request)
        except Refused as exc:
            answer = {"ok": False, "error": str(exc), "usage": exc.usage, "stopping": exc.stopping}
        except (ValueError, KeyError, TypeError) as exc:
            answer = {"ok": False, "error": f"malformed request: {exc}", "usage": False}
        except Exception as exc:  # noqa: BLE001 - one bad request must not end the supervisor
            log.exception("request failed")
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "usage": False}
        with contextlib.suppress(ConnectionError):
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
            writer.close()

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer with every instance's status and keep the connection: `_announce` writes to it
        until the watcher hangs up or the supervisor stops."""
        writer.write(_line({"ok": True, "op": "watch", "pid": os.getpid(), "instances": self.statuses()}))
        self._watchers.add(writer)
        try:
            while await reader.read(4096):  # a watcher sends nothing more: this waits for its EOF
                pass
        except ConnectionError:
            pass
        finally:
            self._watchers.discard(writer)
            writer.close()

    def _announce(self, message: dict[str, Any]) -> None:
        """Write `message` to every watcher without waiting for any: one that does not read is
        dropped once _WATCH_BUFFER is unread (it reconnects and gets a state)."""
        if not self._watchers:
            return
        data = _line(message)
        for writer in list(self._watchers):
            if writer.is_closing() or writer.transport.get_write_buffer_size() > _WATCH_BUFFER:
                self._watchers.discard(writer)
                writer.close()
                continue
            writer.write(data)

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Carry out one request; the answer always has "ok" and the op's own fields."""
        op = request.get("op")
        actor = str(request.get("actor") or SYSTEM_ACTOR)
        if op == "ping":
            return {"ok": True, "op": op, "pid": os.getpid()}
        if op == "status":
            return {"ok": True, "op": op, "pid": os.getpid(), "instances": self.statuses()}
        async with self._lock:  # deciding to stop and accepting work are one step: no `up` is undone
            if self._closing and op in ("up", "restart", "scale", "track", "replace"):
                raise Refused(f"the supervisor {os.getpid()} is stopping (every service was brought down); "
                              "ask the next one", usage=False, stopping=True)
            if op == "up":
                specs = [ServiceSpec.from_dict(item) for item in request["services"]]
                return {"ok": True, "op": op, **await self.up(specs, actor)}
            if op == "down":
                names = request.get("services") or list(self.groups)
                answer = {"ok": True, "op": op, **await self.down(names, actor)}
                if not self.groups:  # nothing left to supervise: this supervisor ends
                    self._closing = True
                    self.shutdown.set()
                return answer
            if op == "restart":
                return {"ok": True, "op": op, **await self.restart(str(request["service"]), actor)}
            if op == "scale":
                spec = ServiceSpec.from_dict(request["spec"])
                return {"ok": True, "op": op, **await self.scale(spec, int(request["instances"]), actor)}
            if op == "track":
                spec = ServiceSpec.from_dict(request["spec"])
                return {"ok": True, "op": op, **await self.track(
                    spec, int(request["instances"]), actor, timeout=float(request["timeout"]),
                    existing=bool(request.get("existing")))}
            if op == "replace":
                version = request.get("version")
                return {"ok": True, "op": op, **await self.replace(
                    str(request["service"]), int(request["instance"]),
                    None if version is None else str(version), actor, timeout=float(request["timeout"]))}
        raise Refused(f"unknown request {op!r}", usage=False)

    # --- operations ---------------------------------------------------------------------

    async def up(self, specs: list[ServiceSpec], actor: str) -> dict[str, Any]:
        """Start what is not running; a service whose settings changed is stopped and started
        with the new ones, on the ports its instances had. A count set by `scale` is kept;
        otherwise the inventory's `instances` is run."""
        result: dict[str, list[str]] = {"started": [], "recreated": [], "unchanged": []}
        for spec in specs:
            group = self.groups.get(spec.name)
            reason = None
            if group is not None and not group.spec.same_program(spec):
                kept = ServiceGroup(spec, scaled_to=group.scaled_to,
                                    ports={i: p for i, p in group.ports.items() if i > 0 and spec.wants_port})
                await self._stop_groups([spec.name], actor, reason="settings changed")
                self.groups[spec.name] = group = kept
                reason = "settings changed"
            elif group is None:
                group = self.groups[spec.name] = ServiceGroup(spec)
            group.spec = spec  # the same program; its `instances` may have changed
            resized = await self._resize(group, group.wanted, actor, reason="instances in the inventory")
            started = self._start_instances(group, range(group.wanted), actor, reason)
            outcome = "recreated" if reason else "started" if started or resized else "unchanged"
            result[outcome].append(spec.name)
        self._changed()
        return result

    async def down(self, names: list[str], actor: str) -> dict[str, Any]:
        """Stop the named groups; a service's name stands for its tracks too."""
        groups = [group for group in self.groups if group in names or base_service(group) in names]
        unknown = [name for name in names
                   if not any(group == name or base_service(group) == name for group in groups)]
        stopped = await self._stop_groups(groups, actor, reason=None)
        return {"stopped": stopped, "not_running": unknown, "remaining": list(self.groups)}

    async def restart(self, name: str, actor: str) -> dict[str, Any]:
        """Stop and start each instance in turn, waiting for one to answer before the next."""
        group = self._group(name)
        pids = {}
        for index in sorted(group.instances):
            instance = group.instances[index]
            await instance.stop()
            instance.start(actor, kind="runtime.restarted", reason="requested")
            await instance.wait_started(_START_WAIT)
            pids[index] = instance.pid
        self._changed()
        return {"service": name, "pids": pids}

    async def scale(self, spec: ServiceSpec, count: int, actor: str) -> dict[str, Any]:
        if not 1 <= count <= 100:
            raise Refused(f"cannot scale {spec.name} to {count}: give a number of instances from 1 to 100")
        group = self.groups.get(spec.name)
        if group is None:
            group = self.groups[spec.name] = ServiceGroup(spec)
        before = group.active_count()
        group.scaled_to = count
        await self._drop_surplus(group, count)
        self._start_instances(group, range(count), actor, None)
        await asyncio.gather(*(group.instances[i].wait_started(_START_WAIT) for i in range(count)))
        ports = [group.ports.get(i) for i in range(count)]
        self.recorder.record("runtime.scaled", service=spec.name, outcome="ok", actor=actor,
                             details={"from": before, "to": count, "ports": ports,
                                      "version": group.spec.version})
        self._changed()
        return {"service": spec.name, "from": before, "to": count, "ports": ports}

    async def track(self, spec: ServiceSpec, count: int, actor: str, *, timeout: float,
                    existing: bool) -> dict[str, Any]:
        """Run `count` instances of the track `spec` names and wait until each runs. A track
        started here that does not come up is stopped; with `existing`, the track must run
        already and is only resized (kept as it is when the new instances fail)."""
        if not 1 <= count <= 100:
            raise Refused(f"cannot run {count} instances of {spec.name}: give a number from 1 to 100")
        group = self.groups.get(spec.name)
        if existing:
            if group is None or not group.instances:
                raise Refused(f"the track {spec.name} is not running; start it before scaling it")
        elif group is not None and not group.spec.same_program(spec):
            await self._stop_groups([spec.name], actor, reason="settings changed")
            group = None
        created = group is None
        if group is None:
            group = self.groups[spec.name] = ServiceGroup(spec)
        before = group.active_count()
        group.scaled_to = count
        await self._drop_surplus(group, count)
        self._start_instances(group, range(count), actor, None)
        self._changed()
        instances = [group.instances[i] for i in range(count)]
        laggards = await await_running(instances, timeout, self.clock)
        if laggards:
            problem = not_running(laggards, timeout, stopped=created)  # as they were, before any stop
            if created:
                await self._stop_groups([spec.name], actor, reason="did not come up")
            raise Refused(problem, usage=False)
        if not created and before != count:
            self.recorder.record("runtime.scaled", service=spec.name, outcome="ok", actor=actor,
                                 details={"from": before, "to": count, "version": group.spec.version,
                                          "ports": [group.ports.get(i) for i in range(count)]})
        return {"service": spec.name, "instances": [instance.status().as_dict() for instance in instances]}

    async def replace(self, name: str, index: int, version: str | None, actor: str, *,
                      timeout: float) -> dict[str, Any]:
        """Replace instance `index` of group `name` by `version` on its port and wait until it
        runs; the group takes `version` for new instances once all of them run it."""
        group = self._group(name)
        instance = group.instances.get(index)
        if instance is None:
            numbers = ", ".join(str(i) for i in sorted(group.instances))
            raise Refused(f"{name} has no instance {index} (its instances: {numbers})")
        await instance.replace(version, actor)
        self._changed()
        laggards = await await_running([instance], timeout, self.clock)
        group.settle_version()
        self._changed()
        if laggards:
            raise Refused(not_running(laggards, timeout, stopped=False), usage=False)
        return {"instance": instance.status().as_dict()}

    def statuses(self) -> list[dict[str, Any]]:
        return [group.instances[i].status().as_dict()
                for group in self.groups.values() for i in sorted(group.instances)]

    # --- helpers ------------------------------------------------------------------------

    def _group(self, name: str) -> ServiceGroup:
        group = self.groups.get(name)
        if group is None or not group.instances:
            raise Refused(f"{name} is not running; start it with `opsplane up {name}`")
        return group

    def _instance(self, group: ServiceGroup, index: int) -> Instance:
        instance = group.instances.get(index)
        if instance is None:
            instance = group.instances[index] = Instance(
                group.spec, index, group.port_for(index), log_dir=self.paths.logs,
                environ=self.environ, recorder=self.recorder, clock=self.clock,
                on_change=self._changed)
        return instance

    def _start_instances(
        self, group: ServiceGroup, indexes: range, actor: str, reason: str | None
    ) -> list[int]:
        started = []
        for index in indexes:
            instance = self._instance(group, index)
            if not instance.active:
                instance.start(actor, reason=reason)
                started.append(index)
        return started

    async def _drop_surplus(self, group: ServiceGroup, count: int) -> list[int]:
        """Stop and forget the instances numbered `count` and above, the highest first."""
        surplus = sorted((i for i in group.instances if i >= count), reverse=True)
        await asyncio.gather(*(group.instances[i].stop() for i in surplus))
        for index in surplus:
            group.instances.pop(index).close()
            group.ports.pop(index, None)
        return surplus

    async def _resize(self, group: ServiceGroup, count: int, actor: str, *, reason: str) -> bool:
        """Bring a running service to `count` instances for `up`; whether that changed its count
        (recorded as `runtime.scaled`)."""
        before = len(group.instances)
        if not group.instances or before == count:
            return False
        await self._drop_surplus(group, count)
        self._start_instances(group, range(count), actor, None)
        self.recorder.record("runtime.scaled", service=group.spec.name, outcome="ok", actor=actor,
                             details={"from": before, "to": count, "version": group.spec.version,
                                      "ports": [group.ports.get(i) for i in range(count)], "reason": reason})
        return True

    # --- adoption -----------------------------------------------------------------------

    def _adopt(self, state: dict[str, Any] | None) -> None:
        """Take over what the supervisor before this one recorded: instances still running are
        watched from now on, those that ended meanwhile are handled as exits, restarts that were
        due are made."""
        if not state:
            return
        previous = (state.get("supervisor") or {}).get("pid")
        for name, entry in (state.get("services") or {}).items():
            try:
                spec = ServiceSpec.from_dict(entry["spec"])
                records = [(int(item["instance"]), item) for item in entry.get("instances", [])]
            except (KeyError, TypeError, ValueError) as exc:
                log.error("cannot adopt %s, its record is unreadable (%s); stopping its processes", name, exc)
                _stop_recorded(entry)
                continue
            ports = {index: item.get("port") for index, item in records}
            group = self.groups[name] = ServiceGroup(spec, scaled_to=entry.get("scaled_to"), ports=ports)
            pids = [pid for index, item in records if (pid := self._adopt_instance(group, index, item))]
            if pids:
                self.recorder.record("runtime.adopted", service=name, outcome="ok", actor=SYSTEM_ACTOR,
                                     details={"instances": len(pids), "pids": pids,
                                              "previous_supervisor": previous})
        adopted = sum(1 for group in self.groups.values() for i in group.instances.values() if i.pid)
        if self.groups:
            log.info("adopted %d running instances of %d services from supervisor %s", adopted,
                     len(self.groups), previous)

    def _adopt_instance(self, group: ServiceGroup, index: int, item: dict[str, Any]) -> int | None:
        """One recorded instance; its pid when its process still runs."""
        instance = self._instance(group, index)
        instance.version = item["version"] if "version" in item else group.spec.version
        instance.restarts = int(item.get("restarts") or 0)
        instance.last_exit = item.get("last_exit")
        if item.get("pid") and item.get("create_time"):
            identity = ProcessIdentity(int(item["pid"]), float(item["create_time"]))
            alive = is_alive(identity)
            started = item.get("started_at")
            writer = LogWriter.adopt(log_path(self.paths.logs, group.spec.name, index), item.get("writer"))
            instance.adopt(identity, writer, running=item.get("state") == InstanceState.RUNNING,
                           started_at=datetime.fromisoformat(started) if started else None)
            return identity.pid if alive else None
        if item.get("state") in (InstanceState.BACKOFF, InstanceState.STARTING):  # a restart was due
            instance.restarts += 1
            instance.start(SYSTEM_ACTOR, kind="runtime.restarted", reason=f"after {instance.last_exit}")
        else:
            instance.state = str(item.get("state") or InstanceState.STOPPED)
        return None

    async def _stop_groups(self, names: list[str], actor: str, *, reason: str | None) -> list[str]:
        """Stop every instance of the named services at once and forget the services."""

        async def stop(name: str) -> None:
            group = self.groups[name]
            pids = [i.pid for i in group.instances.values() if i.pid]
            endings = await asyncio.gather(*(i.stop() for i in group.instances.values()))
            for instance in group.instances.values():
                instance.close()
            details: dict[str, Any] = {"instances": len(group.instances), "pids": pids,
                                       "killed": sum(1 for how in endings if how == "SIGKILL")}
            if reason:
                details["reason"] = reason
            self.recorder.record("runtime.stopped", service=name, outcome="ok", actor=actor, details=details)
            del self.groups[name]

        await asyncio.gather(*(stop(name) for name in names))
        self._changed()
        return names

    def _changed(self) -> None:
        """Save the state file once the current step of the event loop is done."""
        if not self._save_pending:
            self._save_pending = True
            asyncio.get_running_loop().call_soon(self._save)

    def _save(self) -> None:
        self._save_pending = False
        if self._closed:
            return
        write_state(self.paths, {
            "version": 1,
            "supervisor": {"pid": os.getpid(), "create_time": self._me.create_time()},
            "services": {
                name: {"spec": group.spec.as_dict(), "scaled_to": group.scaled_to,
                       "instances": [group.instances[i].recorded() for i in sorted(group.instances)]}
                for name, group in self.groups.items()
            },
        })
        self._announce({"event": "state", "instances": self.statuses()})

    async def _sample_forever(self) -> None:
        while True:
            for group in self.groups.values():
                for instance in group.instances.values():
                    instance.sample()
            await asyncio.sleep(self.sample_every)


class _AnnouncingRecorder:
    """Records events as `recorder` does, and tells the watchers of each exit at once: the
    exit event is recorded the moment the supervisor has seen the process end, before it
    decides on and waits for a restart."""

    def __init__(self, recorder: Recorder, announce: Callable[[dict[str, Any]], None]) -> None:
        self._recorder = recorder
        self._announce = announce

    def record(self, kind: str, *, service: str, outcome: str, actor: str,
               details: dict[str, Any] | None = None) -> None:
        self._recorder.record(kind, service=service, outcome=outcome, actor=actor, details=details)
        if kind == "runtime.exited":
            details = details or {}
            self._announce({"event": "exited", "service": service, "instance": details.get("instance"),
                            "pid": details.get("pid"), "exit": details.get("exit")})


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"


def _stop_recorded(entry: Any) -> None:
    """Stop the processes of a state file's entry that cannot be adopted."""
    items = entry.get("instances", []) if isinstance(entry, dict) else []
    for item in items:
        if isinstance(item, dict) and item.get("pid") and item.get("create_time"):
            stop_session(ProcessIdentity(int(item["pid"]), float(item["create_time"])), 10.0)


# --- the process ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsplane.drivers.runtime.supervisor")
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--detach", action="store_true", help="Run in the background once listening.")
    parser.add_argument("--sample-every", type=float, default=2.0)
    args = parser.parse_args(argv)
    paths = StatePaths(args.state_dir.resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    if args.detach:
        return _detach(paths, args.sample_every)
    _configure_logging()
    return _run(paths, args.sample_every, notify=None)


def _detach(paths: StatePaths, sample_every: float) -> int:
    """Fork a supervisor into its own session; return when it listens (0) or failed (1)."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(read_end)
        os.setsid()
        _redirect_output(paths.supervisor_log)
        _configure_logging()
        code = 1
        try:
            code = _run(paths, sample_every, notify=write_end)
        except BaseException:
            log.exception("supervisor failed")
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode().strip()
    if message.startswith(("ready", "running")):
        print(message)
        return 0
    sys.stderr.write((message or f"the supervisor ended before it was ready; see {paths.supervisor_log}")
                     + "\n")
    return 1


def _run(paths: StatePaths, sample_every: float, *, notify: int | None) -> int:
    lock = paths.lock.open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _notify(notify, "running: another supervisor holds " + str(paths.lock))
        return 0
    recorder = EventRecorder(os.environ.get("OPSPLANE_DATABASE_URL"))
    supervisor = Supervisor(paths, environ=dict(os.environ), recorder=recorder, sample_every=sample_every)
    try:
        asyncio.run(supervisor.serve(ready=lambda: _notify(notify, f"ready {os.getpid()}")))
    except OSError as exc:
        _notify(notify, f"the supervisor cannot listen on {paths.socket}: {exc.strerror or exc}")
        return 1
    finally:
        recorder.close()
        lock.close()
    return 0


def _notify(fd: int | None, message: str) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, message.encode())
        os.close(fd)


def _redirect_output(path: Path) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)


def _configure_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
