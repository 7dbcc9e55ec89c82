"""What every backup engine driver shares: where copies are kept and what a backup produced.

These are plain values resolved from the inventory (secrets already read), so a driver never
sees the configuration and a test can build them directly."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from opsplane.errors import OpsplaneError


class BackupEngineError(OpsplaneError):
    """A backup engine's command failed or answered something opsplane cannot read.

    The message names the engine, what it was doing and the end of what it printed."""

    exit_code = 2


@dataclass(frozen=True)
class S3Location:
    """A bucket on an S3-compatible object store."""

    endpoint: str  # host or host:port, no scheme; always spoken to over TLS
    bucket: str
    region: str
    access_key: str
    secret_key: str
    ca_file: str | None = None  # a CA bundle for a store with its own certificate
    verify_tls: bool = True
    uri_style: Literal["path", "host"] = "path"

    @property
    def host(self) -> str:
        return self.endpoint.rsplit(":", 1)[0] if ":" in self.endpoint else self.endpoint

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1]) if ":" in self.endpoint else 443

    @property
    def url(self) -> str:
        return f"https://{self.endpoint}"


@dataclass(frozen=True)
class Repository:
    """One place copies are kept: a directory (`s3` None) or a path inside a bucket.

    `cipher_pass` is the key every copy in it is encrypted with; `offsite` says whether it
    counts as the copy away from the platform for 3-2-1."""

    name: str
    path: str
    cipher_pass: str
    s3: S3Location | None = None
    offsite: bool = False

    @property
    def kind(self) -> Literal["posix", "s3"]:
        return "s3" if self.s3 is not None else "posix"


@dataclass(frozen=True)
class StoredCopy:
    """A backup as one repository holds it, named by the engine's own id for it
    (pgBackRest's backup label, restic's snapshot id)."""

    repository: str
    label: str
    stored_bytes: int | None = None  # what it takes there, after compression and dedup


@dataclass(frozen=True)
class BackupOutcome:
    """What one finished backup produced.

    `size_bytes` is the data's own size; `checksum` a SHA-256 that identifies the content
    (of the engine's manifest or of the file saved); `facts` are what the engine reports
    that restore and verify need later (WAL range, start and stop LSN, server version, the
    tables and their row counts when the backup ended)."""

    kind: str
    started: datetime
    finished: datetime
    size_bytes: int
    copies: tuple[StoredCopy, ...]
    checksum: str | None = None
    facts: Mapping[str, Any] = field(default_factory=dict)


# How a long command reports progress: a phase ("backup", "upload offsite") and the
# fraction done in [0, 1], or None while it cannot tell.
Progress = Callable[[str, float | None], None]


def no_progress(phase: str, fraction: float | None) -> None:
    """A Progress that shows nothing."""


# A secret this short also occurs inside ordinary words: it is taken out only where it stands
# alone, so that a message stays readable (such a secret is weak anyway).
_SHORT_SECRET = 4


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with each of `secrets` replaced by "***", so that no key reaches a message."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        if len(secret) >= _SHORT_SECRET:
            text = text.replace(secret, "***")
        else:
            text = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", "***", text)
    return text
