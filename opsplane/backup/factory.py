"""Opening a policy's engine: its repositories resolved from the inventory (secrets read,
directories absolute, each policy in a folder of its own), and the engine that drives them
(`engine_pgbackrest.py` for PostgreSQL, `engine_restic.py` for the rest)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from opsplane.backup.engines import Engine
from opsplane.backup.policy import AppliedPolicy, repository_dir
from opsplane.config.types import SecretRef
from opsplane.drivers.backup.base import Repository, S3Location
from opsplane.errors import UsageError

if TYPE_CHECKING:
    from opsplane.config.models import Inventory


def resolve_repositories(inv: Inventory, policy: AppliedPolicy, *, environ: Mapping[str, str],
                         base_dir: Path) -> tuple[Repository, ...]:
    """The policy's repositories as the drivers take them: secrets read, directories absolute,
    each policy in a folder of its own. SecretError names a reference that cannot be read."""
    if policy.encryption_key is None:
        raise UsageError(f"backup policy {policy.name} has no encryption key: set "
                         "backup.encryption_key or the policy's encryption_key")
    env = dict(environ)
    key = SecretRef(policy.encryption_key).resolve(env)
    resolved = []
    for name in policy.repositories:
        settings = inv.backup.repositories[name]
        s3 = None
        if settings.s3 is not None:
            bucket = settings.s3
            s3 = S3Location(endpoint=bucket.endpoint, bucket=bucket.bucket, region=bucket.region,
                            access_key=SecretRef(bucket.access_key).resolve(env),
                            secret_key=SecretRef(bucket.secret_key).resolve(env),
                            ca_file=_absolute(bucket.ca_file, base_dir), verify_tls=bucket.verify_tls,
                            uri_style=bucket.uri_style)
            path = f"{(settings.path or '/opsplane').rstrip('/')}/{policy.name}"
        else:
            path = str(_absolute_path(repository_dir(inv, name, settings), base_dir) / policy.name)
        resolved.append(Repository(name=name, path=path, cipher_pass=key, s3=s3,
                                   offsite=settings.is_offsite))
    return tuple(resolved)


def open_engine(inv: Inventory, policy: AppliedPolicy, *, environ: Mapping[str, str],
                base_dir: Path) -> Engine:
    """The engine of `policy`, ready to use."""
    repositories = resolve_repositories(inv, policy, environ=environ, base_dir=base_dir)
    state_dir = _absolute_path(Path(inv.runtime.state_dir), base_dir)
    if policy.engine == "pgbackrest":
        from opsplane.backup.engine_pgbackrest import PgBackRestEngine

        return PgBackRestEngine(inv, policy, repositories, state_dir=state_dir, environ=environ)
    from opsplane.backup.engine_restic import open_restic_engine

    return open_restic_engine(inv, policy, repositories, state_dir=state_dir, environ=environ,
                              base_dir=base_dir)


def _absolute(path: str | None, base_dir: Path) -> str | None:
    return None if path is None else str(_absolute_path(Path(path), base_dir))


def _absolute_path(path: Path, base_dir: Path) -> Path:
    return path if path.is_absolute() else base_dir / path
