"""Stopping and starting again a PostgreSQL or Redis server for a game day: only one opsplane
started itself, never the machine's own or another team's.

A server counts as opsplane's when the demo in the inventory's directory recorded it
(`pids.json`, `demo/records.py`), it still runs under that record (pid and start time), and it
is the one the inventory's component names: on loopback, at the component's port (read from
the server's own command line, or PostgreSQL's `postmaster.pid`). Anything else is refused
with the reason. Stopping records how the server was started, so starting it again needs only
that record (a game day cut off by a crash is undone from it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from opsplane.errors import OpsplaneError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_WAIT = 30.0


class FaultRefused(OpsplaneError):
    """A scenario that cannot be played here, with the reason (exit code 3: nothing changed)."""

    exit_code = 3


def owned_server(base: Path, *, name: str, kind: str, host: str, port: int | None) -> psutil.Process:
    """The process of the `kind` ('postgres' or 'redis') server opsplane started for component
    `name`; FaultRefused saying why when there is none."""
    from opsplane.demo import records
    from opsplane.drivers.runtime.processes import is_alive

    what = "PostgreSQL" if kind == "postgres" else "Redis"
    where = f"{host}:{port}"
    if host not in LOOPBACK or port is None:
        raise FaultRefused(f"{name} at {where} is not a server opsplane started (it is not on this "
                           f"machine's loopback): a game day stops only the demo's own {what}")
    identity = records.own(base).get(kind)
    if identity is None:
        raise FaultRefused(f"{name} at {where} is not a server opsplane started: no demo in {base} "
                           f"recorded a {what} server ({records.PIDS_FILE}), so it may be the machine's "
                           f"shared one, which a game day never stops")
    if not is_alive(identity):
        raise FaultRefused(f"the {what} server the demo in {base} recorded (pid {identity.pid}) is not "
                           f"running: there is nothing of opsplane's to stop at {where}")
    process = psutil.Process(identity.pid)
    found = _listening_port(process, kind)
    if found != port:
        raise FaultRefused(f"{name} at {where} is not the {what} server opsplane started (that one "
                           f"listens on port {found}): a game day never stops the machine's own servers")
    return process


def _listening_port(process: psutil.Process, kind: str) -> int | None:
    argv = process.cmdline()
    flag = "-p" if kind == "postgres" else "--port"
    for i, word in enumerate(argv[:-1]):
        if word == flag and argv[i + 1].isdigit():
            return int(argv[i + 1])
    if kind == "redis":  # redis-server retitles itself "redis-server 127.0.0.1:6379"
        words = " ".join(argv).split()
        _, _, port = (words[-1] if words else "").rpartition(":")
        return int(port) if port.isdigit() else None
    if kind == "postgres":
        data_dir = _data_dir(process)
        try:  # line 4 of postmaster.pid is the port the server listens on
            return int((data_dir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None
    return None


def _data_dir(process: psutil.Process) -> Path:
    argv = process.cmdline()
    for i, word in enumerate(argv[:-1]):
        if word == "-D":
            return Path(process.cwd(), argv[i + 1])
    return Path(process.cwd())


# --- PostgreSQL ------------------------------------------------------------------------------


def stop_postgres(process: psutil.Process) -> dict[str, Any]:
    """Fast shutdown (SIGINT) of the server, waited for; the record `start_postgres` needs."""
    data_dir = _data_dir(process)
    opts = (data_dir / "postmaster.opts").read_text().strip()
    words = shlex.split(opts)
    owner = data_dir.stat().st_uid
    process.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
    _wait_gone(process)
    return {"server": "postgres", "data_dir": str(data_dir), "options": _options(words), "owner": owner,
            "log": str(data_dir.parent / "postgres.log")}


def _options(words: list[str]) -> list[str]:
    """The server's options without its binary and data directory (pg_ctl passes those)."""
    found, skip = [], False
    for word in words[1:]:
        if skip:
            skip = False
            continue
        if word == "-D":
            skip = True
            continue
        found.append(word)
    return found


def start_postgres(record: dict[str, Any], base: Path) -> str:
    """Start the server `stop_postgres` stopped, with the same options, as its data's owner."""
    from opsplane.demo import records
    from opsplane.drivers.sandbox.postgres import find_postgres_bindir

    data_dir = Path(record["data_dir"])
    pid = _postmaster(data_dir)
    if pid is not None:
        return f"PostgreSQL in {data_dir} already runs (pid {pid})"
    argv = [str(find_postgres_bindir() / "pg_ctl"), "start", "-D", str(data_dir), "-l", record["log"],
            "-w", "-t", str(int(_WAIT)), "-o", " ".join(map(shlex.quote, record["options"]))]
    done = subprocess.run(_as_owner(int(record["owner"]), argv), capture_output=True, text=True,  # noqa: S603
                          check=False, timeout=_WAIT + 30, cwd=data_dir.parent, start_new_session=True)
    pid = _postmaster(data_dir)
    if done.returncode != 0 or pid is None:
        raise OpsplaneError(f"PostgreSQL in {data_dir} did not start again (pg_ctl exit {done.returncode}): "
                            f"{(done.stderr or done.stdout).strip()[-300:]}")
    records.replace(base, "postgres", pid)
    return f"PostgreSQL in {data_dir} started again (pid {pid})"


def _postmaster(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def _as_owner(uid: int, argv: list[str]) -> list[str]:
    if os.geteuid() != 0 or uid == 0:
        return argv
    import pwd

    user = pwd.getpwuid(uid).pw_name
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *argv]
    return ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]


# --- Redis -----------------------------------------------------------------------------------


# what a Redis server is started again with, read from it before it stops (its command line is
# gone: redis-server retitles itself)
_REDIS_SETTINGS = ("port", "bind", "dir", "save", "appendonly", "logfile", "maxmemory", "maxmemory-policy",
                   "requirepass", "dbfilename", "databases", "protected-mode")


def stop_redis(process: psutil.Process, *, port: int, password: str | None) -> dict[str, Any]:
    """`redis-cli SHUTDOWN NOSAVE` (the cache's data is not kept), waited for; the record
    `start_redis` needs: the server's binary and settings."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=10,
                         decode_responses=True)
    try:
        settings: dict[str, str] = {str(name): str(value) for wanted in _REDIS_SETTINGS
                                    for name, value in client.config_get(wanted).items()}
    finally:
        client.close()
    # the name it was started by: the binary it resolves to may be another (Debian links
    # redis-server to redis-check-rdb, which acts by the name it is called with)
    words = " ".join(process.cmdline()).split()
    argv = [words[0] if words else (shutil.which("redis-server") or "redis-server"), "--daemonize", "no"]
    for name, value in settings.items():
        if name == "bind":
            argv += ["--bind", *value.split()]
        else:
            argv += [f"--{name}", value]
    cli = shutil.which("redis-cli")
    if cli is not None:
        env = {**os.environ, **({"REDISCLI_AUTH": password} if password else {})}
        subprocess.run([cli, "-h", "127.0.0.1", "-p", str(port), "SHUTDOWN", "NOSAVE"],  # noqa: S603
                       capture_output=True, text=True, check=False, timeout=15, env=env)
    else:
        process.terminate()
    _wait_gone(process)
    return {"server": "redis", "argv": argv, "cwd": settings.get("dir") or process.cwd(), "port": port}


def start_redis(record: dict[str, Any], base: Path) -> str:
    """Start the server `stop_redis` stopped with its own command line, detached from us."""
    from opsplane.demo import records

    port = int(record["port"])
    if _answers(port):
        return f"Redis on port {port} already answers"
    started = subprocess.Popen(record["argv"], cwd=record["cwd"], stdin=subprocess.DEVNULL,  # noqa: S603
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + _WAIT
    while not _answers(port):
        if started.poll() is not None or time.monotonic() > deadline:
            raise OpsplaneError(f"Redis on port {port} did not start again (exit {started.poll()})")
        time.sleep(0.05)
    records.replace(base, "redis", started.pid)
    return f"Redis on port {port} started again (pid {started.pid})"


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_gone(process: psutil.Process) -> None:
    """Until the process has ended (a zombie its parent has not reaped yet counts as ended)."""
    deadline = time.monotonic() + _WAIT
    while _alive(process):
        if time.monotonic() > deadline:
            process.kill()
            deadline = time.monotonic() + 5.0
        time.sleep(0.05)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
