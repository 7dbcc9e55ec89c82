"""The demo platform: the reference shop (gateway, catalog, orders, payments) and a traffic
generator run by the process runtime, on a private PostgreSQL and Redis when they are
installed (SQLite and no cache otherwise), and the inventory that describes it all.

Both are backed up by `serve`'s backup worker into a local repository and, when moto is
installed, an offsite one in a private S3 store: PostgreSQL through pgBackRest, which its
`archive_command` feeds WAL continuously (pg_dump when pgBackRest is missing or the server's
account cannot reach the demo's directory), Redis as RDB snapshots kept by restic.

Every process the demo starts itself is recorded (records.py), and the runtime keeps its own
record, so `opsplane demo --stop` can end a demo whose terminal is gone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsplane.demo import records
from opsplane.demo.records import StopReport, ensure_not_running
from opsplane.drivers.sandbox import SandboxError
from opsplane.drivers.sandbox.ports import free_port
from opsplane.drivers.sandbox.postgres import TemporaryPostgres, server_can_reach
from opsplane.drivers.sandbox.redis import TemporaryRedis

INVENTORY_FILE = "opsplane.yaml"
SHOP_SERVICES = ("gateway", "catalog", "orders", "payments")
# The platform's SLOs for the gateway and payments (docs/slo.md): availability and "p95 under
# X ms", counted on shoppers' requests (opsplane's own probes and scrapes left out).
_SHOPPERS = 'route!~"/health|/metrics"'
SLOS_YAML = [
    "slos:",
    *[line for service, availability, threshold in (("gateway", "99.9%", "150ms"),
                                                    ("payments", "99.99%", "500ms")) for line in (
        f"  {service}-availability:",
        f"    service: {service}",
        f"    objective: {availability}",
        "    sli:",
        "      events:",
        f"        bad: 'http_requests_total{{service=\"{service}\",{_SHOPPERS},status=~\"5..\"}}'",
        f"        total: 'http_requests_total{{service=\"{service}\",{_SHOPPERS}}}'",
        f"  {service}-latency:",
        f"    service: {service}",
        "    objective: 95%",
        "    sli:",
        "      latency:",
        f"        histogram: 'http_request_duration_seconds{{service=\"{service}\",{_SHOPPERS}}}'",
        f"        threshold: {threshold}",
    )],
]
# Enough shoppers that a canary at a quarter of catalog's requests has a verdict within about a
# minute (the analysis wants 200 requests of each release before it judges).
TRAFFIC_RPS = 20.0
RUNBOOK = "https://runbooks.example.com/shop"
# The backup policy of the demo's PostgreSQL, which is also its pgBackRest stanza; the bucket of
# the offsite repository. WAL is archived at least every 30 s while the shop writes.
PG_POLICY = "postgres-main"
BACKUP_BUCKET = "demo-backups"
ARCHIVE_TIMEOUT = "30"
# Who is paged in the demo, and where a page shows: two people taking the primary and the
# secondary in turns, week by week, and the console channel, which prints each notification
# on the demo's own output (there is no PagerDuty or mail server to reach).
# The manual's checklists, run by serve at its times (docs/checklists.md); its maintenance,
# security and capacity jobs at theirs, kept as reports (docs/reports.md); each resource's use
# recorded every minute for the capacity forecasts (docs/capacity.md); events older than 90
# days moved to signed archives under the demo's directory (docs/audit.md).
CHECKLISTS_YAML = """\
checklists:
  timezone: UTC
jobs:
  timezone: UTC
capacity:
  interval: 1m
audit:
  archive_dir: audit-archive
"""
ONCALL_YAML = """\
channels:
  named:
    console: {type: console}        # one line per notification, in the demo's terminal
alerting:
  receivers:
    default: {channels: [console]}  # every alert group that fires or resolves
oncall:
  people:
    ana: {name: Ana Silva, team: sre, contact: {pagerduty: PANA001}}
    ben: {name: Ben Okafor, team: sre, contact: {pagerduty: PBEN001}}
  schedules:
    shop:
      timezone: UTC
      handoff: {day: mon, time: "09:00"}
      layers:
        primary: {start: "2026-01-05", rotation: [ana, ben]}
        secondary: {start: "2026-01-05", rotation: [ben, ana]}
  policies:
    page:                           # P0 and P1 incidents: the primary, then the secondary
      steps:
        - {notify: ["layer:primary"], via: [pagerduty]}
        - {delay: 5m, notify: ["layer:secondary"], via: [pagerduty]}
    post:                           # P2 and P3: a line on the console, nobody is paged
      steps:
        - {notify: ["channel:console"]}
  severities: {P0: page, P1: page, P2: post, P3: post}
  contact_channels: {pagerduty: console}   # the demo's pages go to its console
"""


@dataclass
class DemoStack:
    """What `opsplane demo` runs, under `base` (which it empties first)."""

    base: Path
    postgres: TemporaryPostgres | None = None
    redis: TemporaryRedis | None = None
    s3: Any = None  # a TemporaryS3 for the offsite repository, when moto is installed
    pgbouncer: Any = None  # a TemporaryPgBouncer between the shop and PostgreSQL, when installed
    ports: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    runtime: Any = None
    traffic: bool = True  # start the shoppers (tests of the demo's processes leave them out)
    paging: bool = True  # the on-call rotation and console channel (tests with their own leave them out)
    # The machine's own CPU, memory and disk check. Tests that count pages leave it out: a
    # busy test machine is not something the shop did.
    host_check: bool = True
    # nginx in front of the shop's services, through which deploys move requests; left out
    # (services answer on their own ports, rolling deploys only) when nginx is not installed
    proxy: bool = True
    # backup policies for PostgreSQL and Redis, which serve's backup worker runs
    backups: bool = True
    # the gateway's and payments' SLOs (docs/slo.md); `opsplane demo` shows them, tests that
    # count pages leave them out (their faults would burn the budgets too)
    slos: bool = False
    pg_engine: str | None = None  # how PostgreSQL is backed up: pgbackrest, pg_dump, or None

    @property
    def inventory_path(self) -> Path:
        return self.base / INVENTORY_FILE

    @property
    def store_url(self) -> str:
        return store_url(self.base)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def environ(self) -> dict[str, str]:
        return runtime_environ(self.base)

    def start_servers(self) -> None:
        """Empty `base`, then start PostgreSQL and Redis; what is not installed is left out
        with a note."""
        ensure_not_running(self.base)
        if self.base.exists():
            shutil.rmtree(self.base)
        (self.base / "secrets").mkdir(parents=True, mode=0o700)
        self._write_pids()
        from opsplane.maintenance import demo as care

        settings = {**self.archive_settings(), **care.statements_settings(self.notes)}
        try:
            self.postgres = TemporaryPostgres(self.base / "postgres", password=secrets.token_urlsafe(18),
                                              settings=settings).start()
            self.postgres.execute("CREATE DATABASE shop")
            care.create_statements(self.postgres, "shop")
        except SandboxError as exc:
            self.notes.append(f"PostgreSQL left out, the shop uses SQLite: {exc}")
            self.postgres = None
            self.pg_engine = None
        self._write_pids()
        if self.postgres is not None:
            self.pgbouncer = care.start_pgbouncer(self.base, self.postgres, "shop", self.notes)
            self._write_pids()
        try:
            self.redis = TemporaryRedis(self.base / "redis").start()
        except SandboxError as exc:
            self.notes.append(f"Redis left out, the shop runs without a cache: {exc}")
            self.redis = None
        self._write_pids()
        if self.backups and (self.postgres or self.redis):
            self._start_s3()
            self._write_pids()

    @property
    def pgbackrest_config_dir(self) -> Path:
        """Where the backup engine renders the stanza's configuration: `<state_dir>/backup/
        pgbackrest/<policy>`, with the inventory's state_dir `run`."""
        return self.base / records.RUNTIME_DIR / "backup" / "pgbackrest" / PG_POLICY

    def archive_settings(self) -> dict[str, str]:
        """The server settings that make PostgreSQL archive WAL into the pgBackRest stanza of
        the demo's policy (the archive_command depends only on the stanza and its configuration
        directory, so it is known before the server starts); none, with a note, when PostgreSQL
        is backed up with pg_dump instead or not at all."""
        if not self.backups:
            return {}
        if shutil.which("restic") is None:
            self.notes.append("restic is not installed: the demo takes no backups of Redis "
                              "(scripts/bootstrap.sh installs it)")
        if shutil.which("pgbackrest") is None:
            self.pg_engine = "pg_dump"
            self.notes.append("pgBackRest is not installed: PostgreSQL is backed up with pg_dump, "
                              "without WAL archiving (scripts/bootstrap.sh installs it)")
            return {}
        if not server_can_reach(self.base):
            self.pg_engine = "pg_dump"
            self.notes.append(f"PostgreSQL's account cannot reach {self.base}, where pgBackRest's "
                              "configuration would be: it is backed up with pg_dump, without WAL "
                              "archiving (give the demo a --dir it can reach for pgBackRest)")
            return {}
        from opsplane.drivers.backup.base import Repository
        from opsplane.drivers.backup.pgbackrest import PgBackRest

        self.pg_engine = "pgbackrest"
        stanza = PgBackRest(PG_POLICY, data_dir="/nonexistent", port=0, socket_dir="/nonexistent",
                            config_dir=self.pgbackrest_config_dir,
                            repositories=[Repository("local", str(self.backup_dir), "")])
        return {**stanza.archive_settings(), "archive_timeout": ARCHIVE_TIMEOUT}

    @property
    def backup_dir(self) -> Path:
        """The local repository: one folder per policy under it."""
        return self.base / "backups"

    def _start_s3(self) -> None:
        """The S3 store of the offsite repository, with its bucket; left out, with a note, when
        moto (the `demo` extra) is not installed or the store does not start."""
        if importlib.util.find_spec("moto") is None:
            self.notes.append("moto is not installed: backups have no offsite copy, so 3-2-1 is not "
                              "met (scripts/bootstrap.sh installs it: pip install -e '.[demo]')")
            return
        from opsplane.drivers.sandbox.s3 import TemporaryS3

        try:
            self.s3 = TemporaryS3(self.base / "s3").start()
            self.s3.create_bucket(BACKUP_BUCKET)
        except Exception as exc:  # noqa: BLE001 - a store that does not start is left out
            if self.s3 is not None:
                self.s3.stop()
            self.s3 = None
            self.notes.append(f"the S3 store of the offsite backups is left out: {exc}")

    def write_inventory(self, api_port: int) -> Path:
        """Pick the shop's ports, write its secrets and the inventory; returns the path."""
        from opsplane.drivers.traffic.base import ProxyError, find_binary

        try:
            if self.proxy:
                find_binary("nginx", None)
        except ProxyError:
            self.proxy = False
            self.notes.append("nginx is not installed: the shop runs without a proxy, so deploys are "
                              "rolling only (scripts/bootstrap.sh installs nginx)")
        self.ports = {name: free_port() for name in (*SHOP_SERVICES, "edge")}
        if self.postgres is not None:
            assert self.postgres.password is not None
            _write_secret(self.base / "secrets" / "postgres-password", self.postgres.password)
            from opsplane.maintenance.demo import database_url

            _write_secret(self.base / "secrets" / "shop-database-url",  # through PgBouncer when it runs
                          database_url(self.pgbouncer, self.postgres, "shop") if self.pgbouncer
                          else self.postgres.url("shop"))
        _write_secret(self.base / "secrets" / "shop-admin-token", secrets.token_urlsafe(24))
        if self.backup_policies():
            _write_secret(self.base / "secrets" / "backup-key", secrets.token_urlsafe(32))
        if self.s3 is not None:
            _write_secret(self.base / "secrets" / "s3-access-key", self.s3.access_key)
            _write_secret(self.base / "secrets" / "s3-secret-key", self.s3.secret_key)
        self.inventory_path.write_text(self.inventory_yaml(api_port))
        return self.inventory_path

    def start_shop(self, inventory: Any) -> None:
        """`opsplane up` for every service of the demo inventory."""
        from opsplane.drivers.runtime import open_runtime

        self.runtime = open_runtime(inventory, base_dir=self.base, environ=self.environ(),
                                    actor="system:demo")
        self.runtime.up([*SHOP_SERVICES, *(["edge"] if self.proxy else [])])
        # Shoppers arrive once the shop answers, not into its start-up.
        self.wait_for_gateway()
        if self.traffic:
            self.runtime.up(["traffic"])

    def wait_for_gateway(self, timeout: float = 60.0) -> None:
        """Until the gateway's /health says ok (every service behind it is up)."""
        import httpx

        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"{self.gateway_url}/health", timeout=2, trust_env=False)
                if answer.status_code == 200 and answer.json().get("status") == "ok":
                    return
                last = f"HTTP {answer.status_code} {answer.text[:200]}"
            except (httpx.HTTPError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise SandboxError(f"the shop's gateway did not become healthy within {timeout:g} s: {last}")

    def admin_token(self) -> str:
        return (self.base / "secrets" / "shop-admin-token").read_text().strip()

    def stop(self) -> StopReport:
        """Stop the shop, then Redis and PostgreSQL, then whatever else the records name that
        still runs; safe to call on a half-started demo. Returns what that last pass found;
        a step that failed is raised once every step has had its turn."""
        failed: list[Exception] = []
        # S3 last: PostgreSQL's archiver may still push WAL to it while shutting down
        for step in (self.runtime and self.runtime.down, self.redis and self.redis.stop,
                     self.pgbouncer and self.pgbouncer.stop, self.postgres and self.postgres.stop,
                     self.s3 and self.s3.stop):
            try:
                if step:
                    step()
            except Exception as exc:  # noqa: BLE001 - the next steps must run regardless
                failed.append(exc)
        report = records.stop(self.base)
        if failed:
            raise failed[0]
        return report

    # --- the inventory ---------------------------------------------------------------------

    def inventory_yaml(self, api_port: int) -> str:
        """The inventory of this demo platform, as a person would write it."""
        from opsplane.maintenance.demo import check_yaml

        python = json.dumps(sys.executable)
        secrets_dir = self.base / "secrets"
        data_deps = [n for n, up in (("postgres-main", self.postgres), ("redis", self.redis)) if up]
        database_env = (
            [f"        SHOP_DATABASE_URL: file:{secrets_dir / 'shop-database-url'}"]
            if self.postgres else [])
        shared_env = [f"        SHOP_DATA_DIR: {json.dumps(str(self.base / 'shop'))}",
                      "        SHOP_VERSION: '{version}'"]
        if self.redis:
            shared_env.append(f"        SHOP_REDIS_URL: {self.redis.url}")
        for name in ("catalog", "orders", "payments"):
            shared_env.append(f"        SHOP_{name.upper()}_URL: http://127.0.0.1:{self.ports[name]}")

        def service(name: str, kind: str, criticality: str, team: str, depends: list[str]) -> list[str]:
            return [
                f"  {name}:",
                f"    kind: {kind}",
                f"    port: {self.ports[name]}",
                *(["    proxy: edge"] if self.proxy else []),
                f"    criticality: {criticality}",
                f"    team: {team}",
                f"    depends_on: [{', '.join(depends)}]",
                f"    runbook: {RUNBOOK}/{name}.md",
                "    metrics_path: /metrics",
                "    checks:",
                "      - {name: health, type: http, path: /health, latency_warning: 500ms,",
                "         json: {path: status, op: in, value: [ok, degraded]}}",
                "      - {name: errors, type: http, path: /health,",
                "         json: {path: errors.ratio_1m, op: '<', value: 0.05}}",
                "    run:",
                f"      argv: [{python}, -m, shop, {name}, --host, 127.0.0.1, --port, '{{port}}']",
                "      version: v1",
                "      env:",
                *shared_env,
                "      secret_env:",
                f"        SHOP_ADMIN_TOKEN: file:{secrets_dir / 'shop-admin-token'}",
                *(database_env if name in ("catalog", "orders") else []),
                "      backoff: {initial: 1s, max: 20s}",
            ]

        lines = [
            "# The demo platform, written by `opsplane demo`.",
            "platform: {name: demo-shop, default_environment: development}",
            "environments:",
            "  development: {host: 127.0.0.1}",
            "defaults: {interval: 5s, timeout: 2s}",
            f"server: {{listen_host: 127.0.0.1, listen_port: {api_port}}}",
            "runtime: {driver: process, state_dir: run}",
            "services:",
            *service("gateway", "gateway", "critical", "platform", ["catalog", "orders"]),
            *service("catalog", "api", "high", "catalog", data_deps),
            *service("orders", "api", "critical", "checkout",
                     [*(["postgres-main"] if self.postgres else []), "payments"]),
            *service("payments", "api", "critical", "payments", []),
            "  traffic:",
            "    kind: worker",
            "    description: Shoppers browsing, searching and buying, so the charts move.",
            "    team: platform",
            "    depends_on: [gateway]",
            "    status_page: false",
            "    run:",
            f"      argv: [{python}, -m, shop.traffic, --base-url, {self.gateway_url},",
            f"             --rps, '{TRAFFIC_RPS:g}', --duration, '0']",
            "      restart: always",
        ]
        if self.proxy:
            lines += [
                "proxies:",
                "  edge:",
                "    engine: nginx",
                "    description: nginx in front of the shop's services; deploys move requests here.",
                f"    port: {self.ports['edge']}",
                "    criticality: critical",
                "    team: platform",
                "    status_page: false",
                "    checks: [{type: http, path: /health}]",
            ]
        lines += [
            "deploy:",
            f"  strategy: {'canary' if self.proxy else 'rolling'}",
            "  windows: {}                      # the demo deploys at any hour",
            "  canary: {steps: [25, 50, 100], step_duration: 60s, interval: 5s}",
            "  analysis: {error_margin: 0.02}     # a good release passes within a couple of minutes here",
            "  blue_green: {keep_previous: 30s}",
            "  services:",
            *[f"    {name}: {{releases_command: [{python}, -m, shop, releases], "
              "irreversible: [v2-migration]}" for name in ("gateway", "catalog", "orders", "payments")],
        ]
        if self.postgres:
            lines += [
                "databases:",
                "  postgres-main:",
                f"    port: {self.postgres.port}",
                f"    user: {self.postgres.user}",
                "    database: shop",
                f"    password: file:{secrets_dir / 'postgres-password'}",
                "    criticality: critical",
                "    team: dba",
                f"    runbook: {RUNBOOK}/postgres-down.md",
                "    checks:",
                "      - {type: postgres}",
                *([f"      - {check_yaml(self.pgbouncer, secrets_dir, 'shop')}"] if self.pgbouncer else []),
            ]
        if self.redis:
            lines += [
                "caches:",
                "  redis:",
                f"    port: {self.redis.port}",
                "    criticality: high",
                "    team: platform",
                f"    runbook: {RUNBOOK}/redis-down.md",
                "    checks: [{type: redis}]",
            ]
        lines += self.backup_yaml()
        if self.slos:
            lines += SLOS_YAML
        if self.host_check:
            lines += [
                "hosts:",
                "  localhost:",
                "    criticality: high",
                "    team: sre",
                "    checks: [{type: host, interval: 15s}]",
            ]
        return "\n".join(lines) + "\n" + (ONCALL_YAML if self.paging else "") + CHECKLISTS_YAML

    def backup_policies(self) -> list[str]:
        """The components the demo backs up."""
        found = []
        if self.backups and self.postgres is not None and self.pg_engine is not None:
            found.append(PG_POLICY)
        if self.backups and self.redis is not None and shutil.which("restic"):
            found.append("redis")
        return found

    def backup_yaml(self) -> list[str]:
        """The inventory's `backup:` section: a local repository and, with the S3 store, an
        offsite one; PostgreSQL's policy (incremental backups every 15 minutes, so the demo
        shows them) and Redis's, with their defaults otherwise."""
        policies = self.backup_policies()
        if not policies:
            return []
        secrets_dir = self.base / "secrets"
        lines = [
            "backup:",
            f"  encryption_key: file:{secrets_dir / 'backup-key'}",
            "  repositories:",
            f"    local: {{path: {json.dumps(str(self.backup_dir))}}}",
        ]
        if self.s3 is not None:
            lines += [
                "    offsite:",
                "      type: s3",
                "      path: /demo",
                f"      s3: {{endpoint: \"{self.s3.endpoint}\", bucket: {BACKUP_BUCKET},",
                f"           access_key: file:{secrets_dir / 's3-access-key'},",
                f"           secret_key: file:{secrets_dir / 's3-secret-key'},",
                f"           ca_file: {json.dumps(str(self.s3.ca_file))}}}",
            ]
        lines.append("  policies:")
        if PG_POLICY in policies:
            assert self.postgres is not None
            if self.pg_engine == "pgbackrest":
                lines += [
                    f"    {PG_POLICY}:",
                    f"      data_dir: {json.dumps(str(self.postgres.data_dir))}",
                    f"      socket_dir: {json.dumps(str(self.postgres.socket_dir))}",
                    "      schedule: {full: '0 */6 * * *', incr: '*/15 * * * *'}",
                ]
            else:
                lines.append(f"    {PG_POLICY}: {{engine: pg_dump}}")
        if "redis" in policies:
            lines.append("    redis: {engine: redis-rdb}")
        return lines

    # --- processes -------------------------------------------------------------------------

    def _write_pids(self) -> None:
        scratch = []
        if self.postgres is not None and self.postgres.running:
            scratch = [path for path in (self.postgres.data_dir.parent, self.postgres.socket_dir)
                       if not path.is_relative_to(self.base)]
        records.record(self.base, {
            "demo": os.getpid(),
            "postgres": self.postgres.pid if self.postgres else None,
            "redis": self.redis.pid if self.redis else None,
            "s3": self.s3.pid if self.s3 else None,
            "pgbouncer": self.pgbouncer.pid if self.pgbouncer else None,
        }, scratch)


def _write_secret(path: Path, value: str) -> None:
    path.touch(mode=0o600)
    path.write_text(value + "\n")


def store_url(base: Path) -> str:
    """The demo's own store, so that its events never mix with another platform's."""
    return f"sqlite:///{base / 'opsplane.db'}"


def runtime_environ(base: Path) -> dict[str, str]:
    """The environment the runtime and the shop get: the demo's store."""
    return {**os.environ, "OPSPLANE_DATABASE_URL": store_url(base)}
