"""Releases and tracks: which release of each service runs, and how a second one beside it is named.

A service's instances run its current release. A deploy records another with
`ReleaseBook.record`, kept in `<state_dir>/releases.json`, so a later `opsplane up` runs what
was deployed rather than the inventory's `run.version`; a `down` leaves the file alone.

A **track** is a second group of instances of one service running another release beside the
current one (a canary, the green half of a blue-green deploy). The supervisor runs it as a
group of its own named `SERVICE@VERSION` (`catalog@v2`), its instances `catalog@v2.0`,
`catalog@v2.1`, ... on free ports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from opsplane.errors import OpsplaneError, UsageError

TRACK_SEPARATOR = "@"
# the same rule as the inventory's run.version
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def track_name(service: str, version: str) -> str:
    """The supervisor group that runs `version` of `service` beside its current release."""
    return f"{service}{TRACK_SEPARATOR}{check_version(version)}"


def split_group(name: str) -> tuple[str, str | None]:
    """(service, track release) of a group name: ("catalog", "v2") for "catalog@v2",
    ("catalog", None) for the service's own group."""
    service, separator, release = name.partition(TRACK_SEPARATOR)
    return (service, release) if separator else (name, None)


def base_service(name: str) -> str:
    """The component a group name belongs to: "catalog" for "catalog" and "catalog@v2"."""
    return split_group(name)[0]


def check_version(version: str) -> str:
    """`version` when it is a release name the inventory would accept; UsageError otherwise."""
    if not isinstance(version, str) or not _VERSION.match(version):
        raise UsageError(
            f"{version!r} is not a release name: use letters, digits, '.', '_' and '-', starting with a "
            "letter or digit, at most 63 characters (like v2, 1.4.0 or 2026-01-06.3)"
        )
    return version


class ReleaseFileError(OpsplaneError):
    """releases.json cannot be read: running the inventory's releases instead would silently undo
    a deploy, so nothing is started until it is mended."""


class ReleaseBook:
    """The release recorded for each service, in one JSON object written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, str]:
        """The recorded release of each service that has one (empty when nothing was recorded)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ReleaseFileError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not all(
                isinstance(key, str) and isinstance(value, str) for key, value in data.items()):
            raise ReleaseFileError(
                f"{self.path} is not a JSON object of service names to releases; mend or remove it "
                "(removing it runs each service's run.version again)")
        return data

    def record(self, service: str, version: str) -> str | None:
        """Record `version` as the current release of `service`; the one recorded before, if any."""
        check_version(version)
        with self._locked():
            releases = self.read()
            before = releases.get(service)
            releases[service] = version
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            temporary.write_text(json.dumps(releases, indent=1, sort_keys=True) + "\n")
            os.replace(temporary, self.path)
        return before

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time: two deploys recording at once both land."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name("releases.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield
