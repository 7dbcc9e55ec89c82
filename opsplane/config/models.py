"""The inventory: what `opsplane.yaml` may say, as pydantic models.

Every section is strict (unknown fields are errors) so that a typo fails loudly instead of
silently disabling a check. Secrets are `Secret` references, never literal values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, WithJsonSchema, model_validator

from opsplane.alerts.models import AlertingSettings
from opsplane.backup.models import BackupSettings
from opsplane.capacity.models import CapacitySettings
from opsplane.checklists.models import ChecklistsSettings
from opsplane.config.types import Duration, Ratio, Secret, Strict
from opsplane.dependencies.models import DependencySources, VulnerabilitySettings
from opsplane.deploy.models import DeploySettings
from opsplane.events.models import AuditSettings
from opsplane.gameday.models import GamedaySettings
from opsplane.incidents.models import IncidentsSettings
from opsplane.notify.models import ChannelsSettings
from opsplane.oncall.models import OncallSettings
from opsplane.reports.models import JobsSettings
from opsplane.runbooks.models import RunbooksSettings
from opsplane.slo.models import Slo, SloName

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=63)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Criticality(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"


# --- checks -----------------------------------------------------------------------------


class CheckBase(Strict):
    name: Name | None = Field(None, description="Unique within the component; defaults to the check type.")
    interval: Duration | None = Field(
        None, description="How often the control plane runs it; defaults.interval when unset."
    )
    timeout: Duration | None = Field(
        None, description="Longest a single run may take; defaults.timeout when unset."
    )
    host: str | None = Field(None, description="Overrides the component's host for this check.")
    port: Port | None = Field(None, description="Overrides the component's port for this check.")


class JsonCondition(Strict):
    path: str = Field(description="Dotted path into the JSON body, e.g. checks.database.status")
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in"] = "=="
    value: str | int | float | bool | None | list[str | int | float | bool | None]


class HttpCheck(CheckBase):
    type: Literal["http"]
    url: str | None = Field(None, description="Full URL; when unset, built from scheme, host, port and path.")
    scheme: Literal["http", "https"] = "http"
    path: str = "/"
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list, description="Accepted status codes; any 2xx or 3xx when empty."
    )
    latency_warning: Duration | None = None
    latency_critical: Duration | None = None
    body_contains: str | None = None
    json_field: JsonCondition | None = Field(None, alias="json")
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token: Secret | None = None
    verify_tls: bool = True
    ca_file: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TcpCheck(CheckBase):
    type: Literal["tcp"]


class PostgresCheck(CheckBase):
    type: Literal["postgres"]
    connections_warning: Ratio = 0.80
    connections_critical: Ratio = 0.95
    long_transaction_warning: Duration = 300.0
    long_transaction_critical: Duration = 1800.0
    replication_lag_warning: Duration = 30.0
    replication_lag_critical: Duration = 300.0


class RedisCheck(CheckBase):
    type: Literal["redis"]
    memory_warning: Ratio = 0.75
    memory_critical: Ratio = 0.90
    hit_ratio_warning: Ratio | None = Field(
        None, description="Warn when the keyspace hit ratio falls below this."
    )


class PgBouncerCheck(CheckBase):
    type: Literal["pgbouncer"]
    admin_user: str = Field("pgbouncer", description="A user in PgBouncer's admin_users or stats_users.")
    password: Secret | None = Field(None, description="That user's password, as a secret reference.")
    database: str | None = Field(
        None, description="Judge only this database's pools (as PgBouncer names it); default every pool.")
    waiting_warning: Annotated[int, Field(ge=1)] = Field(5, description="Clients waiting for a server.")
    waiting_critical: Annotated[int, Field(ge=1)] = Field(20, description="Clients waiting for a server.")
    pool_use_warning: Ratio = Field(0.90, description="Share of the pool's size in active use.")
    pool_use_critical: Ratio | None = Field(
        None, description="Share of the pool's size in active use; unset: a full pool is only a warning "
        "(clients waiting for it are what hurts).")
    wait_warning: Duration = Field(0.05, description="Average wait of a transaction for a server.")
    wait_critical: Duration = Field(0.5, description="Average wait of a transaction for a server.")


class TlsCheck(CheckBase):
    type: Literal["tls"]
    server_name: str | None = None
    warning_days: Annotated[int, Field(ge=0)] = 30
    critical_days: Annotated[int, Field(ge=0)] = 7


class CommandCheck(CheckBase):
    type: Literal["command"]
    argv: list[str] = Field(min_length=1, description="Program and arguments; never run through a shell.")
    warning_exit_codes: list[int] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    secret_env: dict[str, Secret] = Field(
        default_factory=dict,
        description="Environment variables whose values are secret references, read when the check "
        "is built; their values are replaced by *** wherever the program's output is quoted.",
    )
    cwd: str | None = None

    @model_validator(mode="after")
    def _secrets_are_not_also_plain(self) -> CommandCheck:
        both = sorted(set(self.env) & set(self.secret_env))
        if both:
            raise ValueError(
                f"{', '.join(both)} is set in both env and secret_env; keep a secret only in secret_env"
            )
        return self


class HostCheck(CheckBase):
    type: Literal["host"]
    path: str = Field("/", description="Filesystem whose usage is checked.")
    disk_warning: Ratio = 0.75
    disk_critical: Ratio = 0.90
    memory_warning: Ratio = 0.80
    memory_critical: Ratio = 0.95
    cpu_warning: Ratio = 0.75
    cpu_critical: Ratio = 0.90
    load_warning: float = Field(1.5, description="1-minute load average per CPU.")
    load_critical: float = Field(3.0, description="1-minute load average per CPU.")


Check = Annotated[
    HttpCheck | TcpCheck | PostgresCheck | RedisCheck | TlsCheck | CommandCheck | HostCheck | PgBouncerCheck,
    Field(discriminator="type"),
]
CHECK_MODELS: dict[str, type[CheckBase]] = {
    "http": HttpCheck,
    "tcp": TcpCheck,
    "postgres": PostgresCheck,
    "redis": RedisCheck,
    "tls": TlsCheck,
    "command": CommandCheck,
    "host": HostCheck,
    "pgbouncer": PgBouncerCheck,
}
CHECK_TYPES = tuple(CHECK_MODELS)


def check_name(check: CheckBase) -> str:
    return check.name or check.type  # type: ignore[attr-defined]


# --- running components as local processes ---------------------------------------------

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(
            f"invalid environment variable name {value!r}: "
            "use letters, digits and _, not starting with a digit"
        )
    return value


EnvName = Annotated[
    str, AfterValidator(_env_name), WithJsonSchema({"type": "string", "pattern": _ENV_NAME.pattern})
]
RUN_PLACEHOLDERS = ("port", "host", "instance", "service")


class Backoff(Strict):
    initial: Duration = Field(1.0, description="Wait before restarting after the first crash in a row.")
    factor: float = Field(
        2.0, ge=1, le=10, description="Each further crash in a row multiplies the wait by this."
    )
    max: Duration = Field(60.0, description="Longest wait between two restarts.")
    reset_after: Duration = Field(
        30.0,
        description="A run at least this long ends a series of crashes: the next wait is `initial` again.",
    )


class LogRotation(Strict):
    max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="An instance's log file is rotated when it reaches this size."
    )
    daily: bool = Field(
        True, description="The log file is also rotated at its first line of each new day (UTC), so each "
        "rotated file holds at most one day."
    )
    backups: int = Field(
        30, ge=0, le=1000, description="Rotated files kept per instance (name.log.1 is the newest); the "
        "oldest beyond this is deleted at rotation."
    )
    retention: Duration | None = Field(
        None, description="Rotated files older than this are deleted by the daily `log-retention` job "
        "(the current file never is). Unset: 30 days for services, 90 days for proxies (access logs)."
    )


SERVICE_LOG_RETENTION = 30 * 86400.0
PROXY_LOG_RETENTION = 90 * 86400.0


def _proxy_logs() -> LogRotation:
    return LogRotation(backups=90)


class RunSettings(Strict):
    argv: list[str] = Field(
        min_length=1,
        description="Program and arguments, never run through a shell; {port}, {host}, {instance} and "
        "{service} are replaced for each instance.",
    )
    env: dict[EnvName, str] = Field(
        default_factory=dict, description="Environment variables added for the process; same placeholders."
    )
    secret_env: dict[EnvName, Secret] = Field(
        default_factory=dict,
        description="Environment variables whose values are secret references, read each time an "
        "instance starts and never written to logs, state or events.",
    )
    cwd: str | None = Field(
        None,
        description="Working directory; relative to the inventory file's directory, which is the default.",
    )
    instances: int = Field(1, ge=1, le=100, description="How many copies `opsplane up` starts.")
    version: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        description="The release run until a deploy records another; replaces {version} in argv and env.",
    )
    restart: Literal["always", "on-failure", "never"] = Field(
        "on-failure",
        description="When an exited instance is started again: always, on-failure (non-zero exit or a "
        "signal) or never.",
    )
    backoff: Backoff = Field(default_factory=Backoff, description="Waits between restarts after crashes.")
    max_restarts: int | None = Field(
        None, ge=1, description="Restarts allowed within `restart_window`; one more crash marks the "
        "instance failed. Unset: no limit.",
    )
    restart_window: Duration = Field(600.0, description="The window `max_restarts` counts restarts in.")
    stop_timeout: Duration = Field(
        10.0, description="Wait after SIGTERM to the process group before SIGKILL."
    )
    logs: LogRotation = Field(
        default_factory=LogRotation, description="Rotation of each instance's log file."
    )

    @model_validator(mode="after")
    def _secrets_are_not_also_plain(self) -> RunSettings:
        both = sorted(set(self.env) & set(self.secret_env))
        if both:
            raise ValueError(
                f"{', '.join(both)} is set in both env and secret_env; keep a secret only in secret_env"
            )
        return self

    def uses_port(self) -> bool:
        """Whether the program is told its port by the {port} placeholder."""
        texts = [*self.argv, *self.env.values()]
        return any("{port}" in text for text in texts)


class RuntimeSettings(Strict):
    driver: Literal["process"] = Field(
        "process", description="What runs the components: `process`, supervised local processes."
    )
    state_dir: str = Field(
        ".opsplane/run",
        description="Where the runtime keeps its socket, state and logs; relative to the inventory "
        "file's directory.",
    )


# --- components -------------------------------------------------------------------------


class Endpoint(Strict):
    host: str | None = None
    port: Port | None = None
    url: str | None = Field(None, description="Base URL for HTTP checks in this environment.")


class Component(Strict):
    description: str | None = None
    host: str | None = Field(None, description="Defaults to the environment's host, then 127.0.0.1.")
    port: Port | None = None
    url: str | None = Field(None, description="Base URL for HTTP checks (scheme://host:port).")
    container: str | None = Field(None, description="Container or process name on the runtime.")
    metrics_path: str | None = Field(
        None, description="Path of its Prometheus metrics endpoint (e.g. /metrics); unset: not scraped."
    )
    criticality: Criticality = Criticality.MEDIUM
    team: str | None = Field(None, description="Owning team.")
    depends_on: list[str] = Field(default_factory=list)
    runbook: str | None = None
    environments: dict[str, Endpoint] = Field(
        default_factory=dict, description="Per-environment endpoint overrides."
    )
    checks: list[Check] = Field(default_factory=list)
    run: RunSettings | None = Field(
        None, description="How `opsplane up` runs it as local processes; unset: opsplane does not run it."
    )
    proxy: str | None = Field(
        None, description="The entry of `proxies` that fronts it: the proxy listens on this component's "
        "port and spreads requests over its instances, which run on free ports. Blue-green and canary "
        "deploys need one.",
    )
    status_page: bool = Field(
        True, description="Listed on the public status page (`/status`, `/status.json`); false for "
        "parts customers never meet, such as a load generator. Hosts are never listed."
    )


class Service(Component):
    kind: Literal["gateway", "api", "web", "worker", "frontend", "monitoring", "other"] = "api"
    dependencies: DependencySources | None = Field(
        None, description="Its Python environment, requirement files and npm project, which `opsplane audit "
        "deps` checks for known vulnerabilities; see docs/dependencies.md.",
    )


class Database(Component):
    engine: Literal["postgresql"] = "postgresql"
    database: str = "postgres"
    user: str = "postgres"
    password: Secret | None = None


class Cache(Component):
    engine: Literal["redis"] = "redis"
    password: Secret | None = None


class Proxy(Component):
    engine: Literal["nginx", "haproxy"] = "nginx"
    managed: bool = Field(
        True, description="opsplane runs the proxy itself through its runtime (nginx or haproxy in the "
        "foreground, its configuration under the runtime's state directory); false: it only reconfigures "
        "one that runs already, through `config_dir` (nginx) or `admin_socket` (haproxy).",
    )
    config_dir: str | None = Field(
        None, description="Where its configuration is written; default `<state_dir>/proxy/<name>`.")
    admin_socket: str | None = Field(
        None, description="HAProxy's runtime API socket; default `admin.sock` in `config_dir`. HAProxy "
        "takes at most 97 bytes for its path; a longer one is refused when the proxy is opened.")
    binary: str | None = Field(
        None, description="The nginx or haproxy program; default: found on PATH or in /usr/sbin.")
    logs: LogRotation = Field(
        default_factory=_proxy_logs, description="Rotation and retention of the log of a proxy opsplane "
        "runs (`managed`); its access log is kept 90 days unless `retention` says otherwise.",
    )
    version_header: str = Field(
        "X-Version", description="The response header in which a service names its release: how a traffic "
        "change is proven on live answers.",
    )


class Host(Component):
    pass


# --- platform ---------------------------------------------------------------------------


class Environment(Strict):
    description: str | None = None
    host: str | None = Field(None, description="Default host of every component in this environment.")


class Platform(Strict):
    name: str
    default_environment: str = "production"


class Defaults(Strict):
    interval: Duration = 30.0
    timeout: Duration = 5.0


class ServerSettings(Strict):
    listen_host: str = "127.0.0.1"
    listen_port: Port = 8089
    session_idle_timeout: Duration = Field(
        8 * 3600.0, description="A dashboard session unused for this long ends; the browser signs in again."
    )
    session_lifetime: Duration = Field(
        24 * 3600.0, description="A dashboard session ends this long after its sign-in, however busy."
    )
    sign_in_attempts: Annotated[int, Field(ge=1)] = Field(
        5, description="Failed dashboard sign-ins one client address may make within sign_in_window; "
        "the next is refused (429, Retry-After) until the window has passed, twice as long at each "
        "lockout in a row, at most 15 minutes."
    )
    sign_in_window: Duration = Field(
        60.0, description="The window of sign_in_attempts, and the span over which one address's failed "
        "sign-ins are counted into one `ui.login_failed` event."
    )


class MetricsSettings(Strict):
    source: Literal["builtin", "prometheus"] = Field(
        "builtin",
        description="Where alert rules and `opsplane query` read samples: `builtin` (what serve "
        "scrapes) or `prometheus` (the same expressions sent to a Prometheus server's HTTP API).",
    )
    prometheus_url: str | None = Field(
        None, pattern=r"^https?://",
        description="Base URL of that Prometheus (e.g. http://127.0.0.1:9090) when source is prometheus.",
    )
    prometheus_token: Secret | None = Field(
        None, description="Bearer token for that Prometheus, as a secret reference."
    )
    window: Duration = Field(
        3600.0, description="How long scraped samples are kept in memory for PromQL (alert rules, "
        "`opsplane query`)."
    )
    series_limit: Annotated[int, Field(ge=1)] = Field(
        10_000, description="Series one target may have; new series beyond it are refused and the "
        "target's scrape state says so."
    )

    @model_validator(mode="after")
    def _prometheus_needs_its_url(self) -> MetricsSettings:
        if self.source == "prometheus" and not self.prometheus_url:
            raise ValueError("source is prometheus: set prometheus_url to its base URL")
        return self


SECTIONS = ("services", "databases", "caches", "proxies", "hosts")


class Inventory(Strict):
    version: Literal[1] = 1
    platform: Platform
    environments: dict[Name, Environment] = Field(
        default_factory=lambda: {"production": Environment()}
    )
    defaults: Defaults = Field(default_factory=Defaults)
    server: ServerSettings = Field(default_factory=ServerSettings)
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings,
        description="The samples scraped from components with `metrics_path`.",
    )
    runtime: RuntimeSettings = Field(
        default_factory=RuntimeSettings, description="How `opsplane up` runs the components that have `run`."
    )
    services: dict[Name, Service] = Field(default_factory=dict)
    databases: dict[Name, Database] = Field(default_factory=dict)
    caches: dict[Name, Cache] = Field(default_factory=dict)
    proxies: dict[Name, Proxy] = Field(default_factory=dict)
    hosts: dict[Name, Host] = Field(default_factory=dict)
    alerting: AlertingSettings = Field(
        default_factory=AlertingSettings,
        description="Alert rules, the routing tree, receivers and inhibition; see docs/alerting.md.",
    )
    channels: ChannelsSettings = Field(
        default_factory=ChannelsSettings,
        description="Where notifications go (Slack, PagerDuty, e-mail, webhooks, console) and how "
        "they are retried and digested; see docs/notifications.md.",
    )
    oncall: OncallSettings = Field(
        default_factory=OncallSettings,
        description="People, on-call schedules and escalation policies by severity; see docs/oncall.md.",
    )
    deploy: DeploySettings = Field(
        default_factory=DeploySettings,
        description="Deploy strategies, canary analysis, rollback criteria, windows and freezes, and the "
        "releases of each service; see docs/deploys.md.",
    )
    backup: BackupSettings = Field(
        default_factory=BackupSettings,
        description="Where backups are kept and, per database, cache and file tree, how they are taken, "
        "kept, encrypted, verified and drilled; see docs/backups.md.",
    )
    slos: dict[SloName, Slo] = Field(
        default_factory=dict,
        description="Service level objectives: SLI, objective, window, budgeting, burn-rate alerts and the "
        "deploy freeze of a spent budget; see docs/slo.md.",
    )
    runbooks: RunbooksSettings = Field(
        default_factory=RunbooksSettings,
        description="Where runbook files (steps opsplane runs and records) are kept, and which runbooks "
        "`serve` runs by itself for an alert; see docs/runbooks.md.",
    )
    checklists: ChecklistsSettings | None = Field(
        None,
        description="The operator's daily, weekly and monthly checklists `serve` runs and keeps as reports; "
        "present (even empty), they run at the manual's times; see docs/checklists.md.",
    )
    jobs: JobsSettings | None = Field(
        None,
        description="The maintenance, security and capacity jobs `serve` runs and keeps as reports "
        "(`opsplane report jobs` lists them); present (even empty), each runs at the manual's time; "
        "see docs/reports.md.",
    )
    vulnerabilities: VulnerabilitySettings = Field(
        default_factory=VulnerabilitySettings,
        description="The dependency audit: the OSV-compatible API vulnerabilities are looked up in and the "
        "fix times by severity; see docs/dependencies.md.",
    )
    capacity: CapacitySettings | None = Field(
        None,
        description="Performance KPIs and their targets, load tests, and the resources whose use `serve` "
        "records for capacity forecasts; present (even empty), `serve` records them; see docs/capacity.md.",
    )
    incidents: IncidentsSettings = Field(
        default_factory=IncidentsSettings,
        description="Severities (response time, resolution target, update cadence, post-mortem) and "
        "which alerts open incidents; see docs/incidents.md.",
    )
    gamedays: GamedaySettings = Field(
        default_factory=GamedaySettings,
        description="Game day scenarios (a fault injected on purpose, and how fast it was detected, paged, "
        "recovered and resolved) and their quarterly schedule; see docs/gamedays.md.",
    )
    audit: AuditSettings | None = Field(
        None,
        description="Retention of the event log: signed archives of events older than `at_hand`, deleted "
        "after `keep`; run monthly by the `audit-retention` job; see docs/audit.md.",
    )

    def components(self) -> Iterator[tuple[str, str, Component]]:
        """Every component as (section, name, model), in file order within each section."""
        for section in SECTIONS:
            for name, component in getattr(self, section).items():
                yield section, name, component

    @property
    def runs_services(self) -> bool:
        """True when some component has a `run` section: opsplane's runtime runs it."""
        return any(component.run for _, _, component in self.components())

    def component(self, name: str) -> Component:
        for _, found, component in self.components():
            if found == name:
                return component
        raise KeyError(name)
