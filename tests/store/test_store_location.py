"""A SQLite store where opsplane may not write: the command says which directory and why,
exits 3 (a set-up problem), and shows no traceback.

A directory of mode 0555 stops every user but root; root is stopped by a read-only file
system, so when the tests run as root the directory is bound read-only in a mount namespace
of the command's own (`unshare`)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsplane.drivers.sandbox.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = "platform: {name: shop}\nservices:\n  orders: {port: 1}\n"


@pytest.fixture
def place() -> Iterator[Path]:
    """A directory everyone may read; `locked` inside it may be read but not written."""
    # Not under pytest's tmp_path: its parents are private to the user running the tests.
    base = Path(tempfile.mkdtemp(prefix="opsplane-ro-"))
    base.chmod(0o755)
    (base / "opsplane.yaml").write_text(INVENTORY)
    (base / "opsplane.yaml").chmod(0o644)
    (base / "locked").mkdir(mode=0o555)
    (base / "locked").chmod(0o555)
    try:
        yield base
    finally:
        (base / "locked").chmod(stat.S_IRWXU)
        shutil.rmtree(base)


# Binds the directory $1 read-only over itself, then runs the rest of the arguments.
READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def run(place: Path, store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"OPSPLANE_DATABASE_URL": f"sqlite:///{store}", "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    argv = [sys.executable, "-m", "opsplane", "-c", str(place / "opsplane.yaml"), *args]
    if os.geteuid() == 0:  # root writes anywhere a file system lets it
        if shutil.which("unshare") is None:
            pytest.skip("running as root needs unshare (util-linux) for a read-only directory")
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", READ_ONLY, "sh",
                str(place / "locked"), *argv]
    ran = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if "mount:" in ran.stderr or "unshare:" in ran.stderr:
        pytest.skip(f"cannot make a read-only directory as root here: {ran.stderr.strip()}")
    return ran


@pytest.mark.parametrize("args", [
    ["token", "create", "--name", "ci", "--role", "viewer"],
    ["serve", "--port", "0"],
], ids=["token-create", "serve"])
def test_a_store_in_a_directory_that_is_not_writable_is_a_clear_error(place: Path, args: list[str]) -> None:
    if args[0] == "serve":
        args = ["serve", "--port", str(free_port())]
    ran = run(place, place / "locked" / "opsplane.db", *args)
    assert ran.returncode == 3, ran.stderr
    assert "Traceback" not in ran.stderr
    assert f"{place / 'locked'} is not writable" in ran.stderr
    assert str(place / "locked" / "opsplane.db") in ran.stderr
    assert list((place / "locked").iterdir()) == []


def test_a_store_whose_directory_cannot_be_made_is_a_clear_error(place: Path) -> None:
    ran = run(place, place / "locked" / "state" / "opsplane.db", "token", "create", "--name", "ci",
              "--role", "viewer")
    assert ran.returncode == 3, ran.stderr
    assert "Traceback" not in ran.stderr
    assert f"cannot create the directory {place / 'locked' / 'state'}" in ran.stderr
