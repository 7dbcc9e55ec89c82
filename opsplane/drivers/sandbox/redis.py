"""A private Redis server on loopback: redis-server in the foreground, stopped by SIGTERM."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import redis

from opsplane.drivers.sandbox import Sandbox, SandboxError, end_process
from opsplane.drivers.sandbox.ports import free_port

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 10.0


def find_redis_server() -> str:
    """The path of redis-server; SandboxError saying how to install it otherwise."""
    found = shutil.which("redis-server")
    if found is None:
        raise SandboxError(
            "redis-server not found on PATH: install Redis, e.g. `apt-get install redis-server`"
        )
    return found


class TemporaryRedis(Sandbox):
    """A Redis server of our own on 127.0.0.1 on a free port, persisting nothing.

    `maxmemory` (bytes) and `password` (requirepass) are set at start, and `extra_args`
    (more `--name value` settings, such as `--rename-command AUTH ""`); `base_dir` holds
    the server log. With `rdb_file`, the server starts with that RDB snapshot's data (a copy
    of it in `base_dir`, loaded before PING answers); it still persists nothing.
    """

    def __init__(
        self,
        base_dir: str | os.PathLike[str],
        maxmemory: int | None = None,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        rdb_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.host = "127.0.0.1"
        self.port = 0
        self.maxmemory = maxmemory
        self.password = password
        self.extra_args = list(extra_args)
        self.rdb_file = Path(rdb_file) if rdb_file is not None else None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.base_dir / "redis.log"

    @property
    def url(self) -> str:
        """A redis:// URL to database 0, with the password when there is one."""
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def client(self) -> redis.Redis:
        """A new synchronous redis-py client for this server (the caller closes it)."""
        return redis.Redis(host=self.host, port=self.port, password=self.password,
                           socket_timeout=10, decode_responses=True)

    def start(self) -> TemporaryRedis:
        """Start the server; returns self once it answers PING. Starting twice does nothing."""
        if self.running:
            return self
        binary = find_redis_server()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        argv = [
            binary, "--port", str(self.port), "--bind", self.host, "--save", "",
            "--appendonly", "no", "--dir", str(self.base_dir), "--daemonize", "no",
            "--logfile", str(self.log_file),
        ]
        if self.maxmemory is not None:
            argv += ["--maxmemory", str(self.maxmemory)]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        if self.rdb_file is not None:
            argv += ["--dbfilename", self._copy_rdb(self.rdb_file)]
        argv += self.extra_args
        self._process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, cwd=self.base_dir,
        )
        return self._started(self._wait_ready)

    def stop(self) -> None:
        """SIGTERM the server and wait until it has exited (SIGKILL if it will not). Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        end_process(process, _STOP_TIMEOUT)

    def __repr__(self) -> str:
        return f"<TemporaryRedis {self.host}:{self.port} pid={self.pid}>"

    def _copy_rdb(self, source: Path) -> str:
        """Copy `source` into base_dir, where the server loads it at start; its new name."""
        if not source.is_file():
            raise SandboxError(f"the RDB file {source} to start Redis from does not exist")
        name = "start.rdb"
        shutil.copyfile(source, self.base_dir / name)
        return name

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise SandboxError(
                    f"redis-server exited with code {self._process.returncode} at start"
                    f"{self._log_tail()}"
                )
            client = self.client()
            try:
                client.ping()
                return
            except redis.RedisError as exc:
                last_error = exc
            finally:
                client.close()
            time.sleep(0.02)
        raise SandboxError(f"redis-server on port {self.port} did not answer PING within "
                           f"{_START_TIMEOUT:g} s ({last_error}){self._log_tail()}")
