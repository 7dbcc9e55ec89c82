"""The inventory's `backup:` section: where copies are kept, and for each database, cache and
file tree a policy (engine, schedules, retention, encryption key, RPO and RTO targets, verify
and drill schedules), with the operations manual's values as defaults.

The manual's RTO/RPO table sets the targets: PostgreSQL 30 min / 15 min, Redis 15 min / 1 h.
Its drill schedule sets verification weekly and a full drill monthly."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from opsplane.config.types import Duration, Secret, Strict, TimeZone

ENGINES = ("pgbackrest", "pg_dump", "redis-rdb", "files", "sqlite")
Engine = Literal["pgbackrest", "pg_dump", "redis-rdb", "files", "sqlite"]
Kind = Literal["full", "diff", "incr"]
RepoName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]
Port = Annotated[int, Field(ge=1, le=65535)]



def _cron(value: str) -> str:
    # Checked here with the schedule's own parser, so a typo is reported with its line before
    # anything runs.
    from opsplane.backup.schedule import parse_cron

    parse_cron(value)
    return value


Cron = Annotated[str, AfterValidator(_cron)]

# Defaults by engine: the manual's targets where it has them (PostgreSQL, Redis), a day for
# file trees. Schedules run more often than the RPO, so the newest copy is never older than
# the target while a backup is being taken.
DEFAULT_RPO = {"pgbackrest": 900.0, "pg_dump": 900.0, "redis-rdb": 3600.0, "files": 86400.0,
               "sqlite": 3600.0}
DEFAULT_RTO = {"pgbackrest": 1800.0, "pg_dump": 1800.0, "redis-rdb": 900.0, "files": 3600.0,
               "sqlite": 900.0}
DEFAULT_SCHEDULE: dict[str, dict[str, str]] = {
    # Weekly full, daily differential, hourly incremental; WAL archiving covers the minutes between.
    "pgbackrest": {"full": "0 1 * * 0", "diff": "0 1 * * 1-6", "incr": "30 * * * *"},
    "pg_dump": {"full": "*/10 * * * *"},
    "redis-rdb": {"full": "*/30 * * * *"},
    "files": {"full": "0 */12 * * *"},
    "sqlite": {"full": "*/30 * * * *"},
}


class S3Settings(Strict):
    """A bucket on an S3-compatible object store, always spoken to over TLS."""

    endpoint: str = Field(
        description="host or host:port of the store, without a scheme (e.g. s3.eu-west-1.amazonaws.com).",
        pattern=r"^[A-Za-z0-9.\-\[\]:]+$",
    )
    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", description="The bucket's name.")
    region: str = Field("us-east-1", description="The store's region (what it signs requests for).")
    access_key: Secret = Field(description="The access key id, as a secret reference.")
    secret_key: Secret = Field(description="The secret access key, as a secret reference.")
    ca_file: str | None = Field(None, description="A CA bundle for a store with a certificate of its own.")
    verify_tls: bool = Field(True, description="Check the store's certificate (false only for a test store).")
    uri_style: Literal["path", "host"] = Field(
        "path", description="Bucket in the path (most S3-compatible stores) or in the host name (AWS).")


class RepositorySettings(Strict):
    """One place copies are kept: a directory (`posix`) or a path inside a bucket (`s3`)."""

    type: Literal["posix", "s3"] = Field("posix", description="posix: a directory; s3: a bucket.")
    path: str | None = Field(
        None, description="posix: the directory (default `<state_dir>/backups/<name>`); s3: the path "
        "inside the bucket (default `/opsplane`).",
    )
    s3: S3Settings | None = Field(None, description="The bucket, for type s3.")
    offsite: bool | None = Field(
        None, description="Whether this copy is away from the platform, for 3-2-1 (default: true for s3, "
        "false for posix).",
    )

    @model_validator(mode="after")
    def _s3_needs_its_bucket(self) -> RepositorySettings:
        if self.type == "s3" and self.s3 is None:
            raise ValueError("type s3 needs an `s3:` section with endpoint, bucket and keys")
        if self.type == "posix" and self.s3 is not None:
            raise ValueError("an `s3:` section belongs to a repository of type s3")
        return self

    @property
    def is_offsite(self) -> bool:
        return self.offsite if self.offsite is not None else self.type == "s3"

    @property
    def medium(self) -> str:
        return "object-store" if self.type == "s3" else "disk"


class RetentionSettings(Strict):
    """How long copies are kept: grandfather-father-son counts and a recovery window, and never
    fewer good copies than `min_good`."""

    keep_last: int = Field(0, ge=0, description="The newest this many, whatever their age.")
    hourly: int = Field(0, ge=0, description="The newest copy of each of this many recent hours.")
    daily: int = Field(7, ge=0, description="The newest copy of each of this many recent days (default 7).")
    weekly: int = Field(
        4, ge=0, description="The newest copy of each of this many recent ISO weeks (default 4).")
    monthly: int = Field(
        12, ge=0, description="The newest copy of each of this many recent months (default 12).")
    yearly: int = Field(0, ge=0, description="The newest copy of each of this many recent years.")
    recovery_window: Duration | None = Field(
        30 * 86400.0, description="Everything needed to restore to any moment this far back is kept "
        "(default 30d, the manual's retention).",
    )
    min_good: int = Field(
        2, ge=1, description="Pruning never leaves fewer good copies than this (default 2).")


class BackupPolicy(Strict):
    """How one database, cache or file tree is backed up, proven and restored."""

    component: str | None = Field(
        None, description="The database or cache backed up; default the policy's name. File trees and "
        "opsplane's own store have none.",
    )
    engine: Engine | None = Field(
        None, description="pgbackrest (PostgreSQL, physical, with WAL archiving), pg_dump (one database, "
        "logical), redis-rdb, files (a file tree) or sqlite (opsplane's own store). Default: pgbackrest "
        "for a database, redis-rdb for a cache.",
    )
    schedule: Cron | dict[Kind, Cron] | None = Field(
        None, description="When backups run: a cron expression, or one per kind for pgbackrest "
        "(full, diff, incr). Defaults: pgbackrest full Sunday 01:00, diff 01:00 other days, incr "
        "hourly at :30; pg_dump every 10 min; redis-rdb every 30 min; files every 12 h; sqlite every "
        "30 min.",
    )
    repositories: list[RepoName] | None = Field(
        None, description="Where copies go; default every repository. Each backup writes a copy into "
        "each of them.",
    )
    encryption_key: Secret | None = Field(
        None, description="The key every copy is encrypted with; default `backup.encryption_key`.")
    rpo: Duration | None = Field(
        None, description="Most data that may be lost: the newest recoverable point is never older "
        "(default: PostgreSQL 15m, Redis 1h, sqlite 1h, files 24h).",
    )
    rto: Duration | None = Field(
        None, description="Longest a restore may take, measured by drills (default: PostgreSQL 30m, "
        "Redis 15m, sqlite 15m, files 1h).",
    )
    verify: Cron = Field("0 3 * * 0", description="When the newest copy is restored and checked (default "
                         "weekly, Sunday 03:00).")
    drill: Cron = Field("0 4 1 * *", description="When a restore drill measures RTO and RPO (default "
                        "monthly, the 1st at 04:00).")
    retention: RetentionSettings = Field(default_factory=RetentionSettings,
                                         description="How long copies are kept; see below.")
    paths: list[str] = Field(default_factory=list, description="files: the directories and files saved; "
                             "sqlite: the store's file (default: the store opsplane uses).")
    database: str | None = Field(None, description="pg_dump: the database; default the component's.")
    data_dir: str | None = Field(
        None, description="pgbackrest: the cluster's data directory on this host (pg1-path).")
    socket_dir: str = Field(
        "/var/run/postgresql", description="pgbackrest: the directory of the cluster's Unix socket, "
        "through which pgBackRest and the verification's counts reach it.")
    os_user: str | None = Field(
        None, description="pgbackrest: the account that owns the data directory; default its owner.")
    processes: int = Field(2, ge=1, le=32, description="Parallel processes (pgbackrest process-max, pg_dump "
                           "and pg_restore -j).")

    def kinds(self, engine: str) -> dict[str, str]:
        """Each kind of backup this policy takes and its cron schedule."""
        if self.schedule is None:
            return dict(DEFAULT_SCHEDULE[engine])
        if isinstance(self.schedule, str):
            return {"full": self.schedule}
        return {str(kind): cron for kind, cron in self.schedule.items()}


class StandbySettings(Strict):
    """The streaming standby a failover promotes."""

    host: str = Field(description="Its host name or address.")
    port: Port = 5432
    promote: Literal["pg_promote", "pg_ctl"] = Field(
        "pg_promote", description="pg_promote: `SELECT pg_promote()` over the connection (no access to its "
        "host needed); pg_ctl: `pg_ctl promote` on its data directory, on this host.")
    data_dir: str | None = Field(None, description="pg_ctl: its data directory on this host.")
    os_user: str | None = Field(None, description="pg_ctl: the account that owns it; default its owner.")


class PgBouncerSettings(Strict):
    """The PgBouncer the database's clients connect through, which a failover pauses and points at
    the new primary."""

    host: str = Field("127.0.0.1", description="Where its admin console listens.")
    port: Port = 6432
    admin_user: str = Field("pgbouncer", description="A user in its `admin_users`.")
    password: Secret | None = Field(None, description="That user's password, as a secret reference.")
    config_file: str = Field(
        description="Its ini file (absolute path), whose [databases] entry is rewritten; it must be the file "
        "PgBouncer was started with, since RELOAD reads that one.", pattern=r"^/")
    database: str | None = Field(
        None, description="The entry in [databases] the clients use; default the database's `database`.")


class FenceSettings(Strict):
    """How the old primary is kept from taking writes once the standby is promoted."""

    how: Literal["read-only", "stop"] = Field(
        "read-only", description="read-only: `default_transaction_read_only` set by ALTER SYSTEM and "
        "reloaded, every other session ended (over the connection); stop: `pg_ctl stop -m fast` on its data "
        "directory, on this host.")
    data_dir: str | None = Field(None, description="stop: the old primary's data directory on this host.")
    os_user: str | None = Field(None, description="stop: the account that owns it; default its owner.")


class FailoverSettings(Strict):
    """What `opsplane failover DATABASE` promotes, fences and repoints, and how fast it should be."""

    standby: StandbySettings = Field(description="The streaming standby that is promoted.")
    pgbouncer: PgBouncerSettings | None = Field(
        None, description="The pool the clients use; without one the report says what to change instead.")
    fence: FenceSettings = Field(
        default_factory=FenceSettings,
        description="How the old primary is kept from taking writes (default read-only).")
    catch_up: Duration = Field(
        10.0, description="How long the standby may take, after the fence, to receive the old primary's last "
        "WAL before it is promoted (default 10s).")
    target: Duration = Field(
        15.0, description="The goal for the whole failover, from the first check to the end (default 15s).")


class BackupSettings(Strict):
    time_zone: TimeZone = Field("UTC", description="The zone schedules are read in.")
    encryption_key: Secret | None = Field(
        None, description="The key copies are encrypted with unless a policy names its own.")
    repositories: dict[RepoName, RepositorySettings] = Field(
        default_factory=dict, description="Where copies are kept, by name: directories and buckets.")
    policies: dict[RepoName, BackupPolicy] = Field(
        default_factory=dict, description="One per database, cache or file tree, by name.")
    scratch_dir: str | None = Field(
        None, description="Where verification and drills restore to; default `<state_dir>/backup/scratch`.")
    failover: dict[str, FailoverSettings] = Field(
        default_factory=dict, description="Per database, by its name in `databases`: the standby "
        "`opsplane failover` promotes, the fence of the old primary and the PgBouncer it repoints.")
