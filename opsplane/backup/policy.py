"""A backup policy as it applies: the inventory's `backup.policies.NAME` with every default
filled in from the component it protects and the engine's defaults, and its load-time checks.

Pure: reads the inventory, never the environment (secrets stay references here)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsplane.backup.models import (
    DEFAULT_RPO,
    DEFAULT_RTO,
    BackupPolicy,
    RepositorySettings,
    RetentionSettings,
)
from opsplane.errors import UsageError

if TYPE_CHECKING:
    from opsplane.config.models import Inventory

Problem = tuple[tuple[str | int, ...], str]

# Which section a component must be in for each engine, and the engine a section gets by default.
_SECTION_OF = {"pgbackrest": "databases", "pg_dump": "databases", "redis-rdb": "caches"}
_DEFAULT_ENGINE = {"databases": "pgbackrest", "caches": "redis-rdb"}


class UnknownPolicy(UsageError):
    """No backup policy has that name."""


@dataclass(frozen=True)
class AppliedPolicy:
    """Everything a backup, verify, restore or drill of one policy needs to know."""

    name: str
    engine: str
    component: str | None
    kinds: dict[str, str]  # kind -> cron
    repositories: tuple[str, ...]
    encryption_key: str | None  # a secret reference, resolved only when used
    rpo: float
    rto: float
    verify: str
    drill: str
    retention: RetentionSettings
    settings: BackupPolicy

    @property
    def physical(self) -> bool:
        """Continuous archiving between backups (pgBackRest): recovery to any moment."""
        return self.engine == "pgbackrest"


def apply(inv: Inventory, name: str) -> AppliedPolicy:
    """The policy `name` with its defaults; UnknownPolicy naming the defined ones otherwise."""
    policies = inv.backup.policies
    if name not in policies:
        raise UnknownPolicy(f"no backup policy {name!r}{_suggest(name, policies)}; defined: "
                            f"{', '.join(policies) or 'none (add backup.policies to the inventory)'}")
    policy = policies[name]
    component = _component_name(name, policy, inv)
    engine = policy.engine or _default_engine(inv, component) or "files"
    return AppliedPolicy(
        name=name, engine=engine, component=component, kinds=policy.kinds(engine),
        repositories=tuple(policy.repositories if policy.repositories is not None
                           else inv.backup.repositories),
        encryption_key=policy.encryption_key or inv.backup.encryption_key,
        rpo=policy.rpo or DEFAULT_RPO[engine], rto=policy.rto or DEFAULT_RTO[engine],
        verify=policy.verify, drill=policy.drill, retention=policy.retention, settings=policy,
    )


def applied(inv: Inventory) -> list[AppliedPolicy]:
    """Every policy, in file order."""
    return [apply(inv, name) for name in inv.backup.policies]


def repository_dir(inv: Inventory, name: str, repo: RepositorySettings) -> Path:
    """Where a posix repository keeps its copies."""
    if repo.path:
        return Path(repo.path)
    return Path(inv.runtime.state_dir) / "backups" / name


def scratch_dir(inv: Inventory) -> Path:
    """Where verifications and drills restore to."""
    return Path(inv.backup.scratch_dir or Path(inv.runtime.state_dir) / "backup" / "scratch")


def backup_problems(inv: Inventory) -> list[Problem]:
    """Unknown components and repositories, engines that do not fit their component, and what an
    engine needs but was not given; with their paths in the file."""
    problems: list[Problem] = []
    repos = inv.backup.repositories
    sections = {name: section for section, name, _ in inv.components()}
    for name, policy in inv.backup.policies.items():
        at = ("backup", "policies", name)
        component = _component_name(name, policy, inv)
        if policy.component is not None and policy.component not in sections:
            problems.append(((*at, "component"), f"unknown component {policy.component!r}"
                             f"{_suggest(policy.component, sections)}"))
            continue
        engine = policy.engine or _default_engine(inv, component)
        if engine is None:
            problems.append(((*at, "engine"), "say which engine backs this up: pgbackrest or pg_dump for a "
                             "database, redis-rdb for a cache, files (with paths) or sqlite"))
            continue
        wanted = _SECTION_OF.get(engine)
        if wanted is not None and component is None:
            problems.append(((*at, "component"), f"engine {engine} backs up one of {wanted}: name it "
                             f"(component:), or name the policy after it"))
        elif wanted is not None and sections.get(component or "") != wanted:
            problems.append(((*at, "engine"), f"engine {engine} backs up one of {wanted}; "
                             f"{component!r} is {_kind(sections.get(component or ''))}"))
        if engine == "files" and not policy.paths:
            problems.append(((*at, "paths"), "engine files needs the paths to save"))
        if engine == "pgbackrest" and not policy.data_dir:
            problems.append(((*at, "data_dir"), "engine pgbackrest needs the cluster's data directory on "
                             "this host (data_dir), which it reads and restores into"))
        if policy.schedule is not None and not isinstance(policy.schedule, str) and engine != "pgbackrest":
            problems.append(((*at, "schedule"), f"kinds of backup (full, diff, incr) are pgbackrest's; give "
                             f"engine {engine} one cron expression"))
        if isinstance(policy.schedule, dict) and "full" not in policy.schedule:
            problems.append(((*at, "schedule"),
                             "a full backup needs a schedule too: diff and incr build on it"))
        names = policy.repositories if policy.repositories is not None else list(repos)
        if not names:
            problems.append(((*at, "repositories"), "no repository to keep copies in: define "
                             "backup.repositories (a local directory, an s3 bucket)"))
        for i, repo in enumerate(policy.repositories or []):
            if repo not in repos:
                problems.append(((*at, "repositories", i), f"unknown repository {repo!r}"
                                 f"{_suggest(repo, repos)}; defined: {', '.join(repos) or 'none'}"))
        if engine == "pgbackrest" and len(names) > 4:
            problems.append(((*at, "repositories"), "pgbackrest keeps at most 4 repositories"))
        if (policy.encryption_key or inv.backup.encryption_key) is None:
            problems.append(((*at, "encryption_key"), "every copy is encrypted at rest: give the key as a "
                             "secret reference here or in backup.encryption_key (env:NAME or file:/path)"))
    return problems


def _component_name(name: str, policy: BackupPolicy, inv: Inventory) -> str | None:
    if policy.component is not None:
        return policy.component
    if policy.engine in ("files", "sqlite"):
        return None
    return name if any(found == name for _, found, _ in inv.components()) else None


def _default_engine(inv: Inventory, component: str | None) -> str | None:
    for section, found, _ in inv.components():
        if found == component:
            return _DEFAULT_ENGINE.get(section)
    return None


def _kind(section: str | None) -> str:
    return {"databases": "a database", "caches": "a cache", "services": "a service", "proxies": "a proxy",
            "hosts": "a host"}.get(section or "", "not a component")


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
